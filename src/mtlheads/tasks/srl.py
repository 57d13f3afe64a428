"""SRL as end-to-end span ranking (He et al. 2018; reference §3.5, ELIT's ``SpanRankingSRLDecoder``).

Candidate arguments are all spans of width <= ``max_arg_width`` inside the sentence, embedded as
``g = [h_b; h_e; width_emb(w); mean(h_b..h_e)]`` (3D + 20; the width embedding gets dropout). FFNNs (depth 2,
width 150, ReLU, dropout, Xavier init) give a unary argument score phi_a(g) and a unary predicate score
phi_p(h). Per sentence of n words the top max(1, floor(0.8 n)) spans and top max(1, floor(0.4 n)) words are
kept, and every kept (argument, predicate) pair is scored ``s(a, p, r) = FFNN([g_a; h_p])_r + phi_a + phi_p``
for non-null roles, 0 for null. Loss: mean cross entropy over all kept pairs (gold role or null); there is
no separate pruning loss. Decoding: :mod:`.srl_decode`; metric: :mod:`.srl_metric`.

The first layers of the FFNNs are applied block by block (the linear map of a concatenation is the sum of
the blocks' maps) so that the 3D+20 embeddings of all N x W candidates are never materialised; the span
mean is a matmul with an averaging matrix (no ``cumsum``, which has no deterministic CUDA kernel).
Note: ELIT divides the masked span sum by ``max_arg_width``; here the mean is over the span, as specified.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.srl_decode import decode_srl
from mtlheads.tasks.srl_metric import SrlMetric, clean_srl, srl_tuples
from mtlheads.tasks.vocab import LabelVocab

NULL = "<null>"
IGNORE = -100


def _xavier_(linear: nn.Linear) -> None:
    """ELIT's init: Xavier-uniform weight, and Xavier-uniform bias viewed as an (n, 1) matrix."""
    nn.init.xavier_uniform_(linear.weight)
    with torch.no_grad():
        linear.bias.copy_(nn.init.xavier_uniform_(torch.empty(linear.out_features, 1)).view(-1))


class Ffnn(nn.Module):
    """``depth`` x (Linear, ReLU, Dropout), then a Linear projection to ``n_out``."""

    def __init__(self, *, n_in: int, n_hidden: int, depth: int, n_out: int, dropout: float):
        super().__init__()
        if depth < 1:
            raise ValueError(f"ffnn depth must be >= 1, got {depth}")
        sizes = [n_in] + [n_hidden] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.proj = nn.Linear(n_hidden, n_out)
        self.dropout = nn.Dropout(dropout)
        for layer in [*self.layers, self.proj]:
            _xavier_(layer)

    def blocks(self, sizes: list[int]) -> tuple[torch.Tensor, ...]:
        """The first layer's weight split by input blocks, ``(n_hidden, size)`` each, then its bias."""
        return (*self.layers[0].weight.split(sizes, dim=1), self.layers[0].bias)

    def tail(self, pre: torch.Tensor) -> torch.Tensor:
        """Everything after the first linear map. ``pre``: (..., n_hidden), bias included -> (..., n_out)."""
        x = self.dropout(F.relu(pre))
        for layer in self.layers[1:]:
            x = self.dropout(F.relu(layer(x)))
        return self.proj(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.layers[0](x))


def _topk(scores: torch.Tensor, valid: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row top-k of (B, M) ``scores`` among ``valid``; k (B,) -> indices (B, K), keep mask (B, K)."""
    kmax = int(k.max())
    idx = scores.detach().masked_fill(~valid, float("-inf")).topk(kmax, dim=1).indices
    return idx, torch.arange(kmax, device=k.device)[None, :] < k[:, None]


class SrlDecoder(nn.Module):
    """Span-ranking SRL scorer with beam pruning of arguments and predicates (sizes as :class:`SrlTask`)."""

    def __init__(
        self,
        *,
        hidden_size: int,
        n_labels: int,
        max_arg_width: int = 30,
        ffnn_size: int = 150,
        ffnn_depth: int = 2,
        dropout: float = 0.2,
        width_emb: int = 20,
        arg_ratio: float = 0.8,
        pred_ratio: float = 0.4,
    ):
        super().__init__()
        self.max_arg_width, self.arg_ratio, self.pred_ratio = max_arg_width, arg_ratio, pred_ratio
        self.width_emb = nn.Embedding(max_arg_width, width_emb)
        nn.init.xavier_uniform_(self.width_emb.weight)
        self.width_dropout = nn.Dropout(dropout)
        self.span_size = 3 * hidden_size + width_emb
        ffnn = {"n_hidden": ffnn_size, "depth": ffnn_depth, "dropout": dropout}
        self.arg_ffnn = Ffnn(n_in=self.span_size, n_out=1, **ffnn)
        self.pred_ffnn = Ffnn(n_in=hidden_size, n_out=1, **ffnn)
        self.pair_ffnn = Ffnn(n_in=self.span_size + hidden_size, n_out=n_labels - 1, **ffnn)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args:
            hidden: (B, N, D) word vectors.
            mask: (B, N) bool, True on words (each sentence has at least one).

        Returns:
            ``scores`` (B, A, P, |L|) pair scores with column 0 (null) = 0; ``arg_starts``, ``arg_ends``
            (B, A) inclusive word indices and ``arg_mask`` (B, A) of the kept spans (in score order);
            ``preds`` (B, P) and ``pred_mask`` (B, P) of the kept predicates. A = max_b kept spans,
            P = max_b kept predicates; masked entries are padding.
        """
        b, n, d = hidden.shape
        dev = hidden.device
        hidden = hidden.masked_fill(~mask[..., None], 0.0)
        lengths = mask.sum(1)
        w = min(self.max_arg_width, n)
        pos = torch.arange(n, device=dev)
        widths = torch.arange(1, w + 1, device=dev)
        ends = pos[:, None] + widths[None, :] - 1  # (N, W): candidate (i, k) is the span i .. i+k
        inside = (pos[None, None, :] >= pos[:, None, None]) & (pos[None, None, :] <= ends[..., None])
        avg = (inside.to(hidden.dtype) / widths[None, :, None]).view(n * w, n)  # (N*W, N) span means

        # Only candidates inside their sentence are scored: flat id c = (s * N + i) * W + k.
        valid = (ends[None] < lengths[:, None, None]).view(-1)  # (B*N*W,)
        cand = valid.nonzero().squeeze(1)  # (V,)
        sent, start, width0 = cand // (n * w), cand // w % n, cand % w
        wvec = self.width_dropout(self.width_emb(width0))  # (V, E): dropout per candidate span
        ws, we, ww, wm, bias = self.arg_ffnn.blocks([d, d, wvec.shape[-1], d])
        flat = hidden.reshape(b * n, d)
        pre = (
            F.linear(flat, ws, bias)[sent * n + start]
            + F.linear(flat, we)[sent * n + start + width0]
            + F.linear(wvec, ww)
            + (avg @ F.linear(hidden, wm)).reshape(b * n * w, -1)[cand]
        )  # (V, H)
        phi = self.arg_ffnn.tail(pre).squeeze(-1)  # (V,)
        arg_all = phi.new_full((b * n * w,), float("-inf")).index_put((cand,), phi).view(b, n * w)

        n_valid = valid.view(b, -1).sum(1)  # a ratio above 1 may keep every candidate, never more
        k_arg = torch.minimum((lengths * self.arg_ratio).floor().long().clamp(min=1), n_valid)
        top, arg_mask = _topk(arg_all, valid.view(b, -1), k_arg)  # (B, A) flat ids within the sentence
        rows = torch.arange(b, device=dev)[:, None]
        starts, arg_ends = top // w, top // w + top % w
        compact = (valid.long().cumsum(0) - 1).clamp(min=0)  # flat id -> row of ``cand`` (integer cumsum)
        g_width = wvec[compact[rows * (n * w) + top]]  # the same (dropped-out) width vectors as scored
        g_ends = hidden[rows, arg_ends.clamp(max=n - 1)]  # padding slots may hold invalid spans
        g = torch.cat([hidden[rows, starts], g_ends, g_width, avg[top] @ hidden], dim=-1)  # (B, A, 3D+E)
        phi_arg = arg_all.gather(1, top).masked_fill(~arg_mask, 0.0)

        pred_all = self.pred_ffnn(hidden).squeeze(-1)  # (B, N) phi_p
        k_pred = torch.minimum((lengths * self.pred_ratio).floor().long().clamp(min=1), lengths)
        preds, pred_mask = _topk(pred_all, mask, k_pred)  # (B, P)
        h_pred = hidden[rows, preds]  # (B, P, D)

        ug, uh, bias = self.pair_ffnn.blocks([self.span_size, d])
        pair = self.pair_ffnn.tail(F.linear(g, ug)[:, :, None] + F.linear(h_pred, uh, bias)[:, None])
        unary = phi_arg[:, :, None] + pred_all.gather(1, preds)[:, None, :]  # (B, A, P)
        pair = pair + unary[..., None]
        scores = torch.cat([pair.new_zeros(*pair.shape[:-1], 1), pair], dim=-1)
        return {
            "scores": scores,
            "arg_starts": starts,
            "arg_ends": arg_ends,
            "arg_mask": arg_mask,
            "preds": preds,
            "pred_mask": pred_mask,
        }


class SrlTask(LabelVocab):
    """PropBank SRL over CoNLL-2012 ``*_gold_conll`` files, predicates and arguments predicted jointly.

    Args:
        name: Task name.
        max_arg_width: Widest candidate argument span.
        ffnn_size: Width of every FFNN layer.
        ffnn_depth: Hidden layers per FFNN.
        dropout: Dropout after each FFNN layer and on the width embedding.
        width_emb: Width embedding size.
        arg_ratio: Kept argument spans per word (at least 1, at most all candidates).
        pred_ratio: Kept predicates per word (at least 1, at most all words).
    """

    cls_is_root = False
    main_metric = "f1"
    first_label = NULL

    def __init__(
        self,
        *,
        name: str = "srl",
        max_arg_width: int = 30,
        ffnn_size: int = 150,
        ffnn_depth: int = 2,
        dropout: float = 0.2,
        width_emb: int = 20,
        arg_ratio: float = 0.8,
        pred_ratio: float = 0.4,
    ):
        self.name = name
        self.sizes = dict(max_arg_width=max_arg_width, ffnn_size=ffnn_size, ffnn_depth=ffnn_depth)
        self.sizes.update(dropout=dropout, width_emb=width_emb, arg_ratio=arg_ratio, pred_ratio=pred_ratio)

    def read(self, path: str) -> list[Sentence]:
        """CoNLL-2012 sentences with ``srl`` preprocessed by :func:`clean_srl` (no V/C-V, no duplicates)."""
        from mtlheads.data.conll2012_reader import read_conll2012

        sentences = read_conll2012(path)
        for sent in sentences:
            sent.srl = clean_srl(sent.srl)
        return sentences

    def fit_vocab(self, train: list[Sentence]) -> None:
        """Roles = ``<null>`` then the sorted training roles (V/C-V excluded)."""
        roles = sorted({r for s in train for *_, r in srl_tuples(s.srl)} - {NULL})
        self.set_labels([NULL, *roles])

    def build_decoder(self, hidden_size: int) -> nn.Module:
        self.require_labels()
        return SrlDecoder(hidden_size=hidden_size, n_labels=len(self.labels), **self.sizes)

    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]:
        """Returns ``{"gold": (G, 5) long}``, one row ``(sentence, predicate, start, end, role)`` per gold
        argument after :func:`clean_srl`; roles absent from the vocabulary get -100 (ignored by the loss)."""
        rows = []
        for b, sent in enumerate(batch):
            if sent.srl is None:
                raise ValueError(f"{sent.source}: sentence has no SRL layer")
            n = len(sent.words)
            for p, s, e, r in sorted(srl_tuples(sent.srl)):
                if not (0 <= p < n and 0 <= s <= e < n):
                    raise ValueError(f"{sent.source}: SRL tuple ({p}, {s}, {e}) outside the sentence")
                rows.append((b, p, s, e, self.label_index(r, IGNORE)))
        return {"gold": torch.tensor(rows, dtype=torch.long).view(-1, 5)}

    def loss(self, out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], mask: torch.Tensor):
        """Mean cross entropy over all kept (argument, predicate) pairs; null unless the pair is gold.

        Args:
            out: :meth:`SrlDecoder.forward` output, ``scores`` (B, A, P, |L|).
            targets: ``{"gold": (G, 5)}`` from :meth:`targets`.
            mask: (B, N) bool word mask.
        """
        scores, n = out["scores"], mask.shape[1]
        labels = self.pair_labels(out, targets["gold"].to(scores.device), n)  # (B, A, P)
        keep = out["arg_mask"][:, :, None] & out["pred_mask"][:, None, :] & (labels != IGNORE)
        if not bool(keep.any()):
            return scores.sum() * 0.0
        return F.cross_entropy(scores[keep], labels[keep])

    @staticmethod
    def pair_labels(out: dict[str, torch.Tensor], gold: torch.Tensor, n: int) -> torch.Tensor:
        """Gold role index of every kept pair, (B, A, P) long (0 = null), matched by sorted-key search."""
        starts, ends, preds = out["arg_starts"], out["arg_ends"], out["preds"]
        rows = torch.arange(starts.shape[0], device=starts.device)[:, None, None]
        query = ((rows * n + preds[:, None, :]) * n + starts[:, :, None]) * n + ends[:, :, None]
        labels = torch.zeros_like(query)
        if gold.shape[0]:
            keys = ((gold[:, 0] * n + gold[:, 1]) * n + gold[:, 2]) * n + gold[:, 3]
            keys, order = keys.sort()
            at = torch.searchsorted(keys, query).clamp(max=keys.shape[0] - 1)
            labels = torch.where(keys[at] == query, gold[order, 4][at], labels)
        return labels

    def decode(self, out: dict[str, torch.Tensor], mask: torch.Tensor, *, final: bool = False) -> list:
        """Per sentence ``[(predicate, [(start, end, role), ...]), ...]`` (see :func:`decode_srl`).

        ``mask`` and ``final`` are unused: decoding only looks at kept pairs, the same at dev and test.
        """
        return decode_srl(out, self.labels)

    def new_metric(self) -> SrlMetric:
        return SrlMetric()
