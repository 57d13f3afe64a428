"""NER as biaffine span classification (Yu et al. 2020; reference §3.2).

Decoder: start and end projections ``Linear(D, 150)`` (no activation, no dropout), then a zero-initialised
``Biaffine(150, |L|)`` with bias on both sides scores every span ``(i, j)``; label 0 is ``<null>``.
Loss: cross entropy over all candidate spans ``i <= j`` of every sentence (mean). Decoding: spans whose
argmax is not null, sorted by the argmax label's raw score (as ELIT's ``get_pred_ner``), accepted greedily;
in flat mode a span overlapping or nested with an accepted one is rejected. Metric: micro P/R/F1 on exact
``(start, end, type)`` triples.

Unknown entity types (absent from train) map to the reserved index ``|L|``: never predicted, skipped by the
loss, and counted as misses by the metric.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.biaffine import Biaffine
from mtlheads.tasks.vocab import LabelVocab

NULL = "<null>"
IGNORE = -100


def span_candidates(mask: torch.Tensor) -> torch.Tensor:
    """Candidate-span mask.

    Args:
        mask: (B, N) bool word mask.

    Returns:
        (B, N, N) bool, True at ``[b, i, j]`` when ``i <= j`` and both are real words.
    """
    n = mask.shape[1]
    upper = torch.ones(n, n, dtype=torch.bool, device=mask.device).triu_()
    return mask[:, :, None] & mask[:, None, :] & upper


def greedy_spans(
    candidates: list[tuple[int, int, int, float]], *, flat: bool = True
) -> list[tuple[int, int, int]]:
    """Accept spans in descending score order, rejecting clashes with already accepted spans.

    Args:
        candidates: ``(start, end, label, score)`` with inclusive ends; ties keep the input order.
        flat: Reject nested spans too (otherwise only partially overlapping ones).

    Returns:
        Accepted ``(start, end, label)`` sorted by position.
    """
    accepted: list[tuple[int, int, int]] = []
    for ns, ne, label, _ in sorted(candidates, key=lambda c: -c[3]):
        clash = False
        for ts, te, _ in accepted:
            crossing = ns < ts <= ne < te or ts < ns <= te < ne
            nested = ns <= ts <= te <= ne or ts <= ns <= ne <= te
            if crossing or (flat and nested):
                clash = True
                break
        if not clash:
            accepted.append((ns, ne, label))
    return sorted(accepted)


def greedy_spans_batch(
    sentence: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    batch_size: int,
    flat: bool = True,
) -> list[list[tuple[int, int, int]]]:
    """:func:`greedy_spans` of every sentence of a batch at once: one vectorised step per candidate rank.

    Each sentence's candidates are ranked as :func:`greedy_spans` sorts them (descending score, ties in
    input order); step ``k`` tries every sentence's ``k``-th candidate against that sentence's accepted
    spans with the same clash test.

    Args:
        sentence, starts, ends, labels: (C,) ints, the candidates of all sentences (inclusive ends).
        scores: (C,) their scores.
        batch_size: number of sentences B (``sentence`` is in ``0..B-1``).
        flat: Reject nested spans too (otherwise only partially overlapping ones).

    Returns:
        Per sentence the accepted ``(start, end, label)``, sorted by position.
    """
    result: list[list[tuple[int, int, int]]] = [[] for _ in range(batch_size)]
    if not len(sentence):
        return result
    order = np.lexsort((-scores, sentence))  # by sentence, then by descending score; stable
    counts = np.bincount(sentence, minlength=batch_size)
    rank = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    B, K = batch_size, int(counts.max())
    ns, ne = np.zeros((B, K), dtype=np.int64), np.zeros((B, K), dtype=np.int64)
    present = np.zeros((B, K), dtype=bool)
    ns[sentence[order], rank], ne[sentence[order], rank] = starts[order], ends[order]
    present[sentence[order], rank] = True
    accepted = np.zeros((B, K), dtype=bool)
    for k in range(K):
        s, e = ns[:, k : k + 1], ne[:, k : k + 1]  # (B, 1) this step's candidates
        ts, te = ns[:, :k], ne[:, :k]  # (B, k) earlier candidates, accepted or not
        crossing = ((s < ts) & (ts <= e) & (e < te)) | ((ts < s) & (s <= te) & (te < e))
        clash = crossing | ((s <= ts) & (te <= e)) | ((ts <= s) & (e <= te)) if flat else crossing
        accepted[:, k] = present[:, k] & ~(clash & accepted[:, :k]).any(1)
    lab = np.zeros((B, K), dtype=np.int64)
    lab[sentence[order], rank] = labels[order]
    for b, k in zip(*np.nonzero(accepted), strict=True):
        result[b].append((int(ns[b, k]), int(ne[b, k]), int(lab[b, k])))
    return [sorted(r) for r in result]


class NerDecoder(nn.Module):
    """Start/end projections plus a labelled biaffine span scorer.

    Args:
        hidden_size: Word vector size D.
        n_labels: Number of labels |L|, ``<null>`` included.
        ffnn_size: Projection size (150 in the reference).
    """

    def __init__(self, *, hidden_size: int, n_labels: int, ffnn_size: int = 150):
        super().__init__()
        self.start = nn.Linear(hidden_size, ffnn_size)
        self.end = nn.Linear(hidden_size, ffnn_size)
        self.biaffine = Biaffine(n_in=ffnn_size, n_out=n_labels, bias_x=True, bias_y=True)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            hidden: (B, N, D) word vectors.
            mask: (B, N) bool, unused (candidates are selected in loss/decode).

        Returns:
            (B, N, N, |L|) span scores ``s[b, start, end, label]`` (only ``start <= end`` is meaningful).
        """
        return self.biaffine(self.start(hidden), self.end(hidden)).permute(0, 2, 3, 1)


class NerMetric:
    """Micro P/R/F1 on exact ``(start, end, type)``; ``compute() -> {"p", "r", "f1"}`` (fractions)."""

    def __init__(self) -> None:
        self.tp = self.n_pred = self.n_gold = 0

    def update(self, preds: list[list[tuple[int, int, str]]], gold: list[Sentence]) -> None:
        if len(preds) != len(gold):
            raise ValueError(f"{len(preds)} predictions for {len(gold)} sentences")
        for pred, sent in zip(preds, gold, strict=True):
            p = {tuple(x) for x in pred}
            g = {tuple(x) for x in (sent.entities or [])}
            self.tp += len(p & g)
            self.n_pred += len(p)
            self.n_gold += len(g)

    def compute(self) -> dict[str, float]:
        p = self.tp / self.n_pred if self.n_pred else 0.0
        r = self.tp / self.n_gold if self.n_gold else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        return {"p": p, "r": r, "f1": f1}


class NerTask(LabelVocab):
    """Named entity recognition over IOB2 files, decoded as flat (or nested) spans.

    Args:
        name: Task name.
        ffnn_size: Start/end projection size.
        flat: Reject nested predictions (the reference's ``is_flat_ner=True``).
    """

    cls_is_root = False
    main_metric = "f1"
    first_label = NULL

    def __init__(self, *, name: str = "ner", ffnn_size: int = 150, flat: bool = True):
        self.name, self.ffnn_size, self.flat = name, ffnn_size, flat

    def read(self, path: str) -> list[Sentence]:
        from mtlheads.data import read_iob2

        return read_iob2(path)

    def fit_vocab(self, train: list[Sentence]) -> None:
        """Labels = ``<null>`` then the sorted training entity types."""
        types = sorted({t for s in train for _, _, t in (s.entities or [])} - {NULL})
        self.set_labels([NULL, *types])

    def build_decoder(self, hidden_size: int) -> nn.Module:
        self.require_labels()
        return NerDecoder(hidden_size=hidden_size, n_labels=len(self.labels), ffnn_size=self.ffnn_size)

    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]:
        """Returns ``{"labels": (B, N, N) long}``: 0 (null) or the gold label on candidate spans
        ``i <= j < n_b``, ``unk_index`` for unknown types, -100 elsewhere."""
        lengths = torch.tensor([len(s.words) for s in batch], dtype=torch.long)
        n = int(lengths.max()) if len(batch) else 0
        word_mask = torch.arange(n)[None, :] < lengths[:, None]
        labels = torch.full((len(batch), n, n), IGNORE, dtype=torch.long)
        labels[span_candidates(word_mask)] = 0
        for b, sent in enumerate(batch):
            if sent.entities is None:
                raise ValueError(f"{sent.source}: sentence has no entity layer")
            for start, end, label in sent.entities:
                if not 0 <= start <= end < len(sent.words):
                    raise ValueError(f"{sent.source}: entity span ({start}, {end}) outside the sentence")
                labels[b, start, end] = self.label_index(label)
        return {"labels": labels}

    def loss(self, out: torch.Tensor, targets: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Mean cross entropy over all candidate spans (unknown types skipped).

        Args:
            out: (B, N, N, |L|) span scores.
            targets: ``{"labels": (B, N, N)}``.
            mask: (B, N) bool word mask.
        """
        gold = targets["labels"].to(out.device)
        keep = span_candidates(mask) & (gold >= 0) & (gold < out.shape[-1])
        if not bool(keep.any()):
            return out.sum() * 0.0
        return F.cross_entropy(out[keep], gold[keep])

    def decode(self, out: torch.Tensor, mask: torch.Tensor, *, final: bool = False) -> list[list]:
        """Greedy span decoding.

        Args:
            out: (B, N, N, |L|) span scores.
            mask: (B, N) bool word mask.
            final: Unused (decoding is the same at dev and test).

        Returns:
            Per sentence, a position-sorted list of ``(start, end, type)`` with inclusive word indices.
        """
        score, label = out.detach().max(-1)  # (B, N, N)
        keep = span_candidates(mask) & (label != 0)
        b, start, end = (t.cpu().numpy() for t in keep.nonzero(as_tuple=True))  # in (b, start, end) order
        accepted = greedy_spans_batch(
            b,
            start,
            end,
            label[keep].cpu().numpy(),
            score[keep].float().cpu().numpy(),  # numpy has no bf16 (bf16-mixed evaluation)
            batch_size=out.shape[0],
            flat=self.flat,
        )
        return [[(s, e, self.labels[lab]) for s, e, lab in spans] for spans in accepted]

    def new_metric(self) -> NerMetric:
        return NerMetric()
