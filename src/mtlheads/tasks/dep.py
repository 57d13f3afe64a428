"""Biaffine dependency parsing (Dozat & Manning 2017; reference §3.3).

The encoder prepends [CLS] as ROOT (``cls_is_root=True``): ``hidden`` is (B, 1+n, D), position 0 is ROOT,
words sit at 1..n and ``mask[:, 0]`` is True. Four MLPs (Linear → LeakyReLU(0.1) → SharedDropout(0.33),
orthogonal init): arc-dep/arc-head with 500 units, rel-dep/rel-head with 100. The arc biaffine has a bias on
the dependent side only, the relation biaffine on both sides. Padding heads are masked to -inf.

Loss: CE over heads + CE over relations at the **gold** head, each averaged over non-ROOT, non-pad tokens
(punctuation included). Decoding: per-token argmax head (self-loops are not masked, as in ELIT's
``decode_dep``); with ``final=True`` a sentence whose argmax heads are not a well-formed tree is re-decoded
with the tree decoder chosen by ``decoder`` (config key ``tasks.dep.task.decoder``):

- ``"mst"`` (default): Chu-Liu-Edmonds maximum spanning tree (:mod:`mtlheads.tasks.mst`). UD trees can be
  non-projective (EWT: 288 train, 26 test sentences), so crossing arcs are kept: "well-formed" means
  exactly one word attaches to ROOT and there are no cycles.
- ``"eisner"``: the reference's projective decoder (:mod:`mtlheads.tasks.eisner`). "Well-formed" follows
  HanLP/supar ``istree(proj=True)`` with the default ``multiroot=False``: one ROOT child, no cycles,
  projective.

Both decoders enforce the same single-root constraint as the check (``single_root=False`` relaxes both).
Label = argmax relation at the predicted head. Metric: UAS/LAS over tokens that are not punctuation
(``is_punct``).

Unknown relations map to the reserved index ``|R|``: never predicted, skipped by the relation loss, and
counted as LAS errors by the metric.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.biaffine import MLP, Biaffine
from mtlheads.tasks.eisner import eisner_batch, eisner_torch, is_projective_tree
from mtlheads.tasks.mst import are_trees, is_tree, mst_torch
from mtlheads.tasks.vocab import LabelVocab

IGNORE = -100
_DECODERS = ("mst", "eisner")


class DepDecoder(nn.Module):
    """Biaffine arc and relation scorers.

    Args:
        hidden_size: Word vector size D.
        n_rels: Number of relations |R|.
        n_mlp_arc: Arc MLP size.
        n_mlp_rel: Relation MLP size.
        dropout: SharedDropout probability in the MLPs.
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        n_rels: int,
        n_mlp_arc: int = 500,
        n_mlp_rel: int = 100,
        dropout: float = 0.33,
    ):
        super().__init__()
        self.mlp_arc_d = MLP(n_in=hidden_size, n_out=n_mlp_arc, dropout=dropout)
        self.mlp_arc_h = MLP(n_in=hidden_size, n_out=n_mlp_arc, dropout=dropout)
        self.mlp_rel_d = MLP(n_in=hidden_size, n_out=n_mlp_rel, dropout=dropout)
        self.mlp_rel_h = MLP(n_in=hidden_size, n_out=n_mlp_rel, dropout=dropout)
        self.arc_attn = Biaffine(n_in=n_mlp_arc, n_out=1, bias_x=True, bias_y=False)
        self.rel_attn = Biaffine(n_in=n_mlp_rel, n_out=n_rels, bias_x=True, bias_y=True)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Args:
            hidden: (B, N, D) with N = 1 + n and position 0 = ROOT.
            mask: (B, N) bool, True on ROOT and the words; padded heads get -inf arc scores.

        Returns:
            ``{"arc": (B, N, N), "rel_pairs": PairScores}`` with ``arc[b, d, h]`` the score of head ``h`` for
            dependent ``d``; :func:`rel_scores` gives ``rel[b, d, h, r]``, the score of relation ``r`` on that
            arc (the loss takes only the gold arcs' with ``rel_pairs.at``).
        """
        s_arc = self.arc_attn(self.mlp_arc_d(hidden), self.mlp_arc_h(hidden)).squeeze(1)
        if mask is not None:
            s_arc = s_arc.masked_fill(~mask[:, None, :], float("-inf"))
        return {
            "arc": s_arc,
            "rel_pairs": self.rel_attn.pairs(self.mlp_rel_d(hidden), self.mlp_rel_h(hidden)),
        }


def rel_scores(out: dict) -> torch.Tensor:
    """(B, N, N, |R|) relation scores of a decoder output, detached (decoding; ``out["rel"]`` if given)."""
    if "rel" in out:
        return out["rel"].detach()
    with torch.no_grad():  # also for factors made under inference_mode and decoded after it
        return out["rel_pairs"].full().permute(0, 2, 3, 1)


class DepMetric:
    """UAS/LAS excluding punctuation tokens; ``compute() -> {"uas", "las"}`` (fractions)."""

    def __init__(self) -> None:
        from mtlheads.data.ptb import is_punct

        self._is_punct = is_punct
        self.total = self.arcs = self.labelled = 0

    def update(self, preds: list[tuple[list[int], list[str]]], gold: list[Sentence]) -> None:
        if len(preds) != len(gold):
            raise ValueError(f"{len(preds)} predictions for {len(gold)} sentences")
        for (heads, rels), sent in zip(preds, gold, strict=True):
            g_heads, g_rels = sent.heads or [], sent.rels or []
            if not len(heads) == len(rels) == len(g_heads) == len(g_rels) == len(sent.words):
                raise ValueError(f"{sent.source}: prediction and gold lengths differ")
            for word, h, r, gh, gr in zip(sent.words, heads, rels, g_heads, g_rels, strict=True):
                if self._is_punct(word):
                    continue
                self.total += 1
                if h == gh:
                    self.arcs += 1
                    self.labelled += r == gr

    def compute(self) -> dict[str, float]:
        if not self.total:
            return {"uas": 0.0, "las": 0.0}
        return {"uas": self.arcs / self.total, "las": self.labelled / self.total}


class DepTask(LabelVocab):
    """Dependency parsing on CoNLL-U heads and relations.

    Args:
        name: Task name.
        n_mlp_arc: Arc MLP size.
        n_mlp_rel: Relation MLP size.
        dropout: MLP SharedDropout probability.
        single_root: The tree check and the decoder require exactly one ROOT child (as the reference).
        decoder: Test-time tree decoder, ``"mst"`` (non-projective) or ``"eisner"`` (projective).

    Raises:
        ValueError: ``decoder`` is neither ``"mst"`` nor ``"eisner"``.
    """

    cls_is_root = True
    main_metric = "las"
    vocab_key = "rels"

    def __init__(
        self,
        *,
        name: str = "dep",
        n_mlp_arc: int = 500,
        n_mlp_rel: int = 100,
        dropout: float = 0.33,
        single_root: bool = True,
        decoder: str = "mst",
    ):
        self.name, self.n_mlp_arc, self.n_mlp_rel, self.dropout = name, n_mlp_arc, n_mlp_rel, dropout
        self.single_root = single_root
        self.decoder = self._check_decoder(decoder)

    def _check_decoder(self, decoder: str) -> str:
        if decoder not in _DECODERS:
            raise ValueError(f"tasks.{self.name}.task.decoder must be 'mst' or 'eisner', got {decoder!r}")
        return decoder

    @property
    def rels(self) -> list[str]:
        return self.labels

    def read(self, path: str) -> list[Sentence]:
        from mtlheads.data import read_conllu

        return read_conllu(path)

    def fit_vocab(self, train: list[Sentence]) -> None:
        """Relation list = sorted set of the training relations."""
        self.set_labels(sorted({r for s in train for r in (s.rels or [])}))

    def build_decoder(self, hidden_size: int) -> nn.Module:
        self.require_labels()
        return DepDecoder(
            hidden_size=hidden_size,
            n_rels=len(self.labels),
            n_mlp_arc=self.n_mlp_arc,
            n_mlp_rel=self.n_mlp_rel,
            dropout=self.dropout,
        )

    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]:
        """Returns ``{"heads": (B, 1+n), "rels": (B, 1+n)}`` long, -100 at ROOT (position 0) and padding;
        heads index positions of the (1+n) sequence (0 = ROOT), unknown relations = ``unk_index``."""
        n = max((len(s.words) for s in batch), default=0)
        heads = torch.full((len(batch), 1 + n), IGNORE, dtype=torch.long)
        rels = torch.full((len(batch), 1 + n), IGNORE, dtype=torch.long)
        for b, sent in enumerate(batch):
            if sent.heads is None or sent.rels is None:
                raise ValueError(f"{sent.source}: sentence has no dependency layer")
            m = len(sent.words)
            if len(sent.heads) != m or len(sent.rels) != m or any(not 0 <= h <= m for h in sent.heads):
                raise ValueError(f"{sent.source}: malformed heads/relations")
            heads[b, 1 : 1 + m] = torch.tensor(sent.heads, dtype=torch.long)
            rels[b, 1 : 1 + m] = torch.tensor([self.label_index(r) for r in sent.rels])
        return {"heads": heads, "rels": rels}

    def loss(
        self, out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        """Arc CE + relation CE at the gold head, each a mean over non-ROOT, non-pad tokens.

        Args:
            out: the decoder output (``{"arc": (B, N, N), "rel_pairs"}``, or ``"rel"`` (B, N, N, |R|)).
            targets: ``{"heads": (B, N), "rels": (B, N)}``.
            mask: (B, N) bool, True on ROOT and words.
        """
        s_arc = out["arc"]
        pairs = out.get("rel_pairs")
        n_rels = pairs.weight.shape[0] if pairs is not None else out["rel"].shape[-1]
        zero = pairs.zero() if pairs is not None else out["rel"].sum() * 0.0  # reaches the relation scorer
        heads = targets["heads"].to(s_arc.device)
        rels = targets["rels"].to(s_arc.device)
        keep = mask & (heads >= 0)
        keep[:, 0] = False
        if not bool(keep.any()):
            return s_arc.masked_fill(torch.isinf(s_arc), 0).sum() * 0.0 + zero
        b_idx, d_idx = keep.nonzero(as_tuple=True)
        gold_heads = heads[b_idx, d_idx]
        arc_loss = F.cross_entropy(s_arc[b_idx, d_idx], gold_heads)
        gold_rels = rels[b_idx, d_idx]
        gold_rels = gold_rels.masked_fill(gold_rels >= n_rels, IGNORE)
        if not bool((gold_rels >= 0).any()):
            return arc_loss + zero
        # Only the gold arcs' relation scores: never the (B, N, N, |R|) tensor in training.
        s_gold = (
            pairs.at(b_idx, d_idx, gold_heads) if pairs is not None else out["rel"][b_idx, d_idx, gold_heads]
        )
        rel_loss = F.cross_entropy(s_gold, gold_rels, ignore_index=IGNORE)
        return arc_loss + rel_loss

    def tree_heads(self, s_arc: torch.Tensor, *, decoder: str | None = None) -> torch.Tensor:
        """One sentence's test-time heads: the argmax if it is a well-formed tree, else the decoder's tree.

        A well-formed argmax is already the best head assignment, so keeping it gives the decoder's answer
        (up to ties) without running it.

        Args:
            s_arc: (n+1, n+1) scores with ``s_arc[d, h]`` for dependent ``d`` and head ``h`` (0 = ROOT).
            decoder: ``"mst"`` or ``"eisner"``; None = this task's ``decoder``.

        Returns:
            (n,) long heads of words 1..n (1-based, 0 = ROOT) on ``s_arc``'s device.
        """
        decoder = self.decoder if decoder is None else self._check_decoder(decoder)
        heads = s_arc[1:].argmax(-1)
        well_formed = is_tree if decoder == "mst" else is_projective_tree
        if well_formed(heads.tolist(), single_root=self.single_root):
            return heads
        tree = mst_torch if decoder == "mst" else eisner_torch
        return tree(s_arc, single_root=self.single_root)[1:]

    def decode(
        self, out: dict[str, torch.Tensor], mask: torch.Tensor, *, final: bool = False
    ) -> list[tuple[list[int], list[str]]]:
        """Argmax heads (tree decoder fallback when ``final``) and the argmax relation at each predicted head.

        Args:
            out: the decoder output (see ``loss``); all relation scores are computed, as before.
            mask: (B, N) bool, True on ROOT and words (a prefix of each row).
            final: Repair sentences whose argmax is not a well-formed tree with ``self.decoder``
                (see ``tree_heads``).

        Returns:
            Per sentence ``(heads, rels)``: n heads (1-based, 0 = ROOT) and n relation strings.
        """
        s_arc, s_rel = out["arc"].detach(), rel_scores(out).detach()
        lengths = (mask.sum(1) - 1).tolist()  # words per sentence
        heads = s_arc.argmax(-1)  # (B, N)
        if final:
            heads = self.tree_heads_batch(s_arc, lengths).to(heads.device)
        heads[:, 0] = 0
        index = heads[:, :, None, None].expand(-1, -1, 1, s_rel.shape[-1])
        rel_pred = s_rel.gather(2, index).squeeze(2).argmax(-1)  # (B, N)
        heads_list, rels_list = heads.tolist(), rel_pred.tolist()
        return [
            (heads_list[b][1 : n + 1], [self.labels[r] for r in rels_list[b][1 : n + 1]])
            for b, n in enumerate(lengths)
        ]

    def tree_heads_batch(self, s_arc: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """:meth:`tree_heads` of every sentence of a batch: the argmax heads, checked for all sentences at
        once; the sentences whose argmax is not well formed are re-decoded (Eisner: all of them in one
        batched DP; MST: one sentence at a time, Chu-Liu-Edmonds being a sequence of contractions).

        Args:
            s_arc: (B, N, N) scores ``s_arc[b, d, h]``, position 0 = ROOT; sentence ``b`` uses
                ``[:n_b+1, :n_b+1]`` (the rest may hold anything).
            lengths: (B,) words per sentence.

        Returns:
            (B, N) long heads on the CPU: ``[b, 1:n_b+1]`` as ``tree_heads`` gives them, the rest the argmax.
        """
        arcs, n = s_arc.cpu(), torch.tensor(lengths, dtype=torch.long)
        cols = torch.arange(arcs.shape[-1])
        # The argmax over each sentence's own columns, as tree_heads slices them (ties: the first).
        heads = arcs.masked_fill(cols[None, None, :] > n[:, None, None], float("-inf")).argmax(-1)
        ok = are_trees(heads, n, single_root=self.single_root, projective=self.decoder == "eisner")
        bad = (~ok).nonzero().flatten().tolist()
        if not bad:
            return heads
        if self.decoder == "eisner":
            fixed = eisner_batch(
                arcs[bad].float().numpy().transpose(0, 2, 1), n[bad].tolist(), single_root=self.single_root
            )
            for row, b in zip(fixed, bad, strict=True):
                heads[b, 1 : lengths[b] + 1] = torch.from_numpy(row[1 : lengths[b] + 1])
        else:
            for b in bad:
                m = lengths[b]
                heads[b, 1 : m + 1] = mst_torch(arcs[b, : m + 1, : m + 1], single_root=self.single_root)[1:]
        return heads

    def new_metric(self) -> DepMetric:
        return DepMetric()
