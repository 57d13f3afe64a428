"""POS tagging: a single linear softmax layer over word vectors (reference §3.1).

Decoder: ``nn.Linear(D, |T|)`` with no dropout and no MLP. Loss: token cross entropy averaged over the
batch's non-pad tokens. Decoding: argmax. Metric: accuracy over all tokens, punctuation included.

Unknown tags (seen at dev/test but not in train) map to the reserved index ``|T|`` (one past the last
logit): the decoder can never predict it, the loss skips it, and the metric counts the token as wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.vocab import LabelVocab

IGNORE = -100  # target value for padding (skipped by the loss)


class PosDecoder(nn.Module):
    """``nn.Linear(hidden_size, n_tags)``.

    Args:
        hidden_size: Word vector size D.
        n_tags: Number of tags |T|.
    """

    def __init__(self, *, hidden_size: int, n_tags: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, n_tags)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Args:
            hidden: (B, N, D) word vectors.
            mask: (B, N) bool, unused (accepted for a uniform decoder signature).

        Returns:
            (B, N, |T|) tag logits.
        """
        return self.linear(hidden)


class PosMetric:
    """Token accuracy over every word (punctuation included); ``compute() -> {"acc": fraction}``."""

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, preds: list[list[str]], gold: list[Sentence]) -> None:
        if len(preds) != len(gold):
            raise ValueError(f"{len(preds)} predictions for {len(gold)} sentences")
        for pred, sent in zip(preds, gold, strict=True):
            tags = sent.pos or []
            if len(pred) != len(tags):
                raise ValueError(f"{sent.source}: {len(pred)} predicted tags for {len(tags)} gold tags")
            self.correct += sum(p == g for p, g in zip(pred, tags, strict=True))
            self.total += len(tags)

    def compute(self) -> dict[str, float]:
        return {"acc": self.correct / self.total if self.total else 0.0}


class PosTask(LabelVocab):
    """Part-of-speech tagging on the CoNLL-U XPOS column (PTB tags).

    Args:
        name: Task name (key in the model's decoder dict and in metrics).
    """

    cls_is_root = False
    main_metric = "acc"
    vocab_key = "tags"

    def __init__(self, *, name: str = "pos"):
        self.name = name

    # data and vocabulary --------------------------------------------------------------------------
    @property
    def tags(self) -> list[str]:
        return self.labels

    def read(self, path: str) -> list[Sentence]:
        from mtlheads.data import read_conllu

        return read_conllu(path)

    def fit_vocab(self, train: list[Sentence]) -> None:
        """Tag list = sorted set of the training tags (deterministic)."""
        self.set_labels(sorted({t for s in train for t in (s.pos or [])}))

    def build_decoder(self, hidden_size: int) -> nn.Module:
        self.require_labels()
        return PosDecoder(hidden_size=hidden_size, n_tags=len(self.labels))

    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]:
        """Returns ``{"tags": (B, N) long}``, padded with -100, unknown tags = ``unk_index``."""
        n = max((len(s.words) for s in batch), default=0)
        tags = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        for b, sent in enumerate(batch):
            if sent.pos is None:
                raise ValueError(f"{sent.source}: sentence has no POS layer")
            ids = [self.label_index(t) for t in sent.pos]
            tags[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return {"tags": tags}

    def loss(self, out: torch.Tensor, targets: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Mean token cross entropy over non-pad tokens with a known tag.

        Args:
            out: (B, N, |T|) logits.
            targets: ``{"tags": (B, N)}``.
            mask: (B, N) bool word mask.
        """
        gold = targets["tags"].to(out.device)
        keep = mask & (gold >= 0) & (gold < out.shape[-1])
        if not bool(keep.any()):
            return out.sum() * 0.0
        return F.cross_entropy(out[keep], gold[keep])

    def decode(self, out: torch.Tensor, mask: torch.Tensor, *, final: bool = False) -> list[list[str]]:
        """Argmax tags, one list per sentence with that sentence's own length.

        Args:
            out: (B, N, |T|) logits.
            mask: (B, N) bool word mask (words are a prefix of each row).
            final: Unused (no structured decoding for POS).
        """
        pred = out.argmax(-1).tolist()
        lengths = mask.sum(1).tolist()
        return [[self.labels[i] for i in row[:n]] for row, n in zip(pred, lengths, strict=True)]

    def new_metric(self) -> PosMetric:
        return PosMetric()
