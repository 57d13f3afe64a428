"""Two-stage CRF constituency parsing (Zhang, Zhou & Li 2020; reference §3.4).

**Input.** The parser needs the sequence ``[CLS] w1..wn [SEP]``. By default (``hidden_has_sep=True``,
hence ``sep_is_eos = True``) the encoder provides it: ``hidden`` (B, 2+N, D) with [CLS] at 0, words at
1..n and the real [SEP] vector at n+1 of each sentence, ``mask`` (B, 2+N) True on all three. With
``hidden_has_sep=False`` the encoder gives only [CLS] + words (B, 1+N, D) and the decoder puts a
**learned, zero-initialised vector** at position n+1 instead (only its backward half is ever used).

**Decoder.** Each vector is split in halves ``[f; b]``; fencepost ``k = 0..n`` is ``[f_k; b_{k+1}]``.
Span MLPs (left/right, 500) and label MLPs (left/right, 100) are LeakyReLU + SharedDropout(0.33); the span
biaffine has a bias on the left side only, the label biaffine on both sides.

**Training.** Gold trees are function-tag-stripped, left-binarised and unary-collapsed
(:mod:`mtlheads.data.trees`), giving ``2n - 1`` labelled spans. Loss = Tree-CRF NLL summed over the batch
and divided by its number of words, plus label cross entropy over the gold spans (mean); a negative total
(rounding) is clamped to 0. Labels absent from the training vocabulary keep their span in the CRF term but
are skipped by the label loss.

**Decoding.** MBR: span marginals by autograd of logZ (also under ``inference_mode``), CKY over the
marginals, argmax label per predicted span. ``decode`` returns the binarised labelled spans; the metric (or
:meth:`ConTask.to_tree`) turns them into a de-binarised tree with the gold words and POS tags.
Metric: :class:`~mtlheads.tasks.evalb.EvalbMetric` (EVALB/COLLINS.prm), main metric ``f1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import Span, gold_spans, spans_to_tree, to_string
from mtlheads.tasks.biaffine import MLP, Biaffine
from mtlheads.tasks.evalb import EvalbMetric
from mtlheads.tasks.treecrf import cky, inside, marginals
from mtlheads.tasks.vocab import LabelVocab

IGNORE = -100


class ConDecoder(nn.Module):
    """Fencepost span and label scorers.

    Args:
        hidden_size: Word vector size D.
        n_labels: Number of (binarised) span labels |L|.
        n_mlp_span: Span MLP size.
        n_mlp_label: Label MLP size.
        dropout: SharedDropout probability in the MLPs.
        hidden_has_sep: ``hidden`` already holds [SEP] at position n+1 (else a learned vector is used).
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        n_labels: int,
        n_mlp_span: int = 500,
        n_mlp_label: int = 100,
        dropout: float = 0.33,
        hidden_has_sep: bool = False,
    ):
        super().__init__()
        self.hidden_has_sep = hidden_has_sep
        self.sep = None if hidden_has_sep else nn.Parameter(torch.zeros(hidden_size))
        self.mlp_span_l = MLP(n_in=hidden_size, n_out=n_mlp_span, dropout=dropout)
        self.mlp_span_r = MLP(n_in=hidden_size, n_out=n_mlp_span, dropout=dropout)
        self.mlp_label_l = MLP(n_in=hidden_size, n_out=n_mlp_label, dropout=dropout)
        self.mlp_label_r = MLP(n_in=hidden_size, n_out=n_mlp_label, dropout=dropout)
        self.span_attn = Biaffine(n_in=n_mlp_span, n_out=1, bias_x=True, bias_y=False)
        self.label_attn = Biaffine(n_in=n_mlp_label, n_out=n_labels, bias_x=True, bias_y=True)

    def fenceposts(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args:
            hidden: (B, 1+N, D) [CLS] + words, or (B, 2+N, D) with [SEP] when ``hidden_has_sep``.
            mask: (B, 1+N) / (B, 2+N) bool, a True prefix per row.

        Returns:
            Fenceposts (B, N+1, D) and words per sentence ``lengths`` (B,) long.
        """
        if self.hidden_has_sep:
            lengths = mask.sum(1) - 2
            x = hidden
        else:
            lengths = mask.sum(1) - 1
            x = torch.cat([hidden, hidden.new_zeros(hidden.shape[0], 1, hidden.shape[2])], 1)  # (B, N+2, D)
            at_sep = torch.arange(x.shape[1], device=x.device)[None, :] == (lengths + 1)[:, None]
            x = torch.where(at_sep[..., None], self.sep.to(x.dtype), x)
        x_f, x_b = x.chunk(2, -1)
        return torch.cat([x_f[:, :-1], x_b[:, 1:]], -1), lengths

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns ``{"span": (B, N+1, N+1), "label_pairs": PairScores, "lengths": (B,)}``: ``span[b, i, j]``
        scores span ``(i, j)`` over fenceposts; :func:`label_scores` gives ``label[b, i, j, l]``, the score of
        its label ``l`` (the loss takes only the gold spans' with ``label_pairs.at``)."""
        fence, lengths = self.fenceposts(hidden, mask)
        s_span = self.span_attn(self.mlp_span_l(fence), self.mlp_span_r(fence)).squeeze(1)
        pairs = self.label_attn.pairs(self.mlp_label_l(fence), self.mlp_label_r(fence))
        return {"span": s_span, "label_pairs": pairs, "lengths": lengths}


def label_scores(out: dict) -> torch.Tensor:
    """(B, N+1, N+1, |L|) span label scores of a decoder output, detached (decoding; ``out["label"]`` if
    given)."""
    if "label" in out:
        return out["label"].detach()
    with torch.no_grad():  # also for factors made under inference_mode and decoded after it
        return out["label_pairs"].full().permute(0, 2, 3, 1)


class ConTask(LabelVocab):
    """Constituency parsing on CoNLL-2012 trees.

    Args:
        name: Task name.
        n_mlp_span: Span MLP size.
        n_mlp_label: Label MLP size.
        dropout: MLP SharedDropout probability.
        mbr: Decode with CKY over span marginals (reference); False runs CKY over raw span scores.
        hidden_has_sep: The encoder output holds the real [SEP] at position n+1 (see the module doc).
    """

    cls_is_root = True
    main_metric = "f1"

    def __init__(
        self,
        *,
        name: str = "con",
        n_mlp_span: int = 500,
        n_mlp_label: int = 100,
        dropout: float = 0.33,
        mbr: bool = True,
        hidden_has_sep: bool = True,
    ):
        self.sep_is_eos = hidden_has_sep  # asks the encoder for the [SEP] vector after the last word
        self.name, self.n_mlp_span, self.n_mlp_label, self.dropout = name, n_mlp_span, n_mlp_label, dropout
        self.mbr, self.hidden_has_sep = mbr, hidden_has_sep

    def read(self, path: str) -> list[Sentence]:
        from mtlheads.data.conll2012_reader import read_conll2012

        return read_conll2012(path)

    def fit_vocab(self, train: list[Sentence]) -> None:
        """Labels = sorted set of the binarised, unary-collapsed span labels of the training trees."""
        self.set_labels(sorted({lab for s in train for _, _, lab in gold_spans(self._tree(s))}))

    @staticmethod
    def _tree(sent: Sentence) -> str:
        if sent.tree is None:
            raise ValueError(f"{sent.source}: sentence has no constituency tree")
        return sent.tree

    def build_decoder(self, hidden_size: int) -> nn.Module:
        self.require_labels()
        return ConDecoder(
            hidden_size=hidden_size,
            n_labels=len(self.labels),
            n_mlp_span=self.n_mlp_span,
            n_mlp_label=self.n_mlp_label,
            dropout=self.dropout,
            hidden_has_sep=self.hidden_has_sep,
        )

    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]:
        """Returns ``{"charts": (B, N+1, N+1) long}``: the label index of each gold (binarised) span
        ``(i, j)`` over fenceposts, ``unk_index`` for unknown labels, -100 where there is no gold span."""
        n = max((len(s.words) for s in batch), default=0)
        charts = torch.full((len(batch), n + 1, n + 1), IGNORE, dtype=torch.long)
        index: list[tuple[int, int, int, int]] = []  # (sentence, i, j, label id)
        for b, sent in enumerate(batch):
            spans = gold_spans(self._tree(sent))
            if len(spans) != 2 * len(sent.words) - 1 or any(j > len(sent.words) for _, j, _ in spans):
                raise ValueError(f"{sent.source}: tree does not match the {len(sent.words)} words")
            index += [(b, i, j, self.label_index(lab)) for i, j, lab in spans]
        if index:
            b_idx, i_idx, j_idx, ids = torch.tensor(index).unbind(1)
            charts[b_idx, i_idx, j_idx] = ids
        return {"charts": charts}

    def loss(
        self, out: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        """Tree-CRF NLL / #words + label CE over the gold spans, clamped at 0.

        Args:
            out: Decoder output (``span`` (B, N+1, N+1), ``label_pairs`` or ``label`` (B, N+1, N+1, |L|),
                ``lengths`` (B,)).
            targets: ``{"charts": (B, N+1, N+1)}``.
            mask: Encoder mask (unused: ``lengths`` comes from the decoder).
        """
        # log Z - score(gold) cancels: under bf16 autocast the biaffine's bf16 scores would make the gold
        # sum (2n - 1 terms) lose ~1/256 of its size, so both sides are summed in float32 (inside upcasts).
        s_span, lengths = out["span"].float(), out["lengths"]
        pairs = out.get("label_pairs")
        n_labels = pairs.weight.shape[0] if pairs is not None else out["label"].shape[-1]
        charts = targets["charts"].to(s_span.device)
        if charts.shape != s_span.shape:
            raise ValueError(f"charts {tuple(charts.shape)} do not match span scores {tuple(s_span.shape)}")
        gold = charts >= 0
        gold_score = s_span.masked_fill(~gold, 0.0).sum((1, 2))
        span_loss = (inside(s_span, lengths) - gold_score).sum() / lengths.sum().clamp(min=1)
        known = gold & (charts < n_labels)
        if not bool(known.any()):
            label_loss = pairs.zero() if pairs is not None else out["label"].sum() * 0.0
        elif pairs is not None:  # only the gold spans' label scores: never the (B, N+1, N+1, |L|) tensor
            label_loss = F.cross_entropy(pairs.at(*known.nonzero(as_tuple=True)), charts[known])
        else:
            label_loss = F.cross_entropy(out["label"][known], charts[known])
        return (span_loss + label_loss).clamp(min=0.0)

    def decode(
        self,
        out: dict[str, torch.Tensor],
        mask: torch.Tensor,
        *,
        final: bool = False,
        sentences: list[Sentence] | None = None,
    ) -> list:
        """MBR (or Viterbi) tree per sentence.

        Args:
            out: Decoder output.
            mask: Encoder mask (unused).
            final: Unused (decoding is the same at dev and test time).
            sentences: When given, return bracketed strings built with their words and POS tags.

        Returns:
            Per sentence the binarised labelled spans ``(i, j, label)`` in pre-order (``2n - 1`` of them),
            or with ``sentences`` the de-binarised bracketed tree strings ``(TOP ...)``.
        """
        s_span, lengths = out["span"].detach(), out["lengths"].detach()
        scores = marginals(s_span, lengths) if self.mbr else s_span
        trees = cky(scores, lengths)
        label_ids = label_scores(out).detach().argmax(-1).cpu()  # (B, N+1, N+1): all scores, as before
        flat = [(b, i, j) for b, spans in enumerate(trees) for i, j in spans]
        ids = label_ids[tuple(torch.tensor(flat, dtype=torch.long).view(-1, 3).T)].tolist()  # one gather
        labels = iter(self.labels[k] for k in ids)  # in the order of ``flat``: sentence by sentence
        preds: list[list[Span]] = [[(a, c, next(labels)) for a, c in spans] for spans in trees]
        if sentences is not None:
            return [self.to_tree(p, s) for p, s in zip(preds, sentences, strict=True)]
        return preds

    @staticmethod
    def to_tree(spans: list[Span], sentence: Sentence) -> str:
        """Bracketed ``(TOP ...)`` string of predicted spans, with the sentence's words and gold POS tags."""
        if sentence.pos is None:
            raise ValueError(f"{sentence.source}: sentence has no POS tags")
        return to_string(spans_to_tree(spans, sentence.words, sentence.pos))

    def new_metric(self) -> EvalbMetric:
        return EvalbMetric()
