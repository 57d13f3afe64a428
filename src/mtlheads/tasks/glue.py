"""GLUE sentence(-pair) tasks: MT-DNN-style classification or regression on the [CLS] vector.

The encoder sees the pair in the model's own format (``[CLS] a [SEP] b [SEP]`` with token types for
BERT-like models, ``<s> a </s></s> b </s>`` for RoBERTa) and the decoder reads position 0:
pooler (Linear + tanh) → dropout → Linear. Classification uses cross entropy, STS-B mean squared error.
The pooler is trained from scratch, so every encoder gets the same head whether or not it ships one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mtlheads.data.glue_reader import GLUE_TASKS, GlueExample, glue_task_name
from mtlheads.tasks.glue_metrics import glue_metrics


class SentenceClassifier(nn.Module):
    """Pooler + dropout + linear on the first position.

    Args:
        hidden_size: encoder width D.
        num_outputs: number of classes (1 for regression).
        dropout: dropout before the output layer.
    """

    def __init__(self, *, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, 1+N, D) with position 0 = [CLS] -> scores (B, C)."""
        return self.out(self.dropout(torch.tanh(self.pooler(hidden[:, 0]))))


class GlueMetric:
    """Collects predictions and gold labels; ``compute()`` gives the task's official GLUE metrics."""

    def __init__(self, task: str):
        self.task, self.preds, self.golds = task, [], []

    def update(self, preds: list, gold: list[GlueExample]) -> None:
        self.preds += list(preds)
        self.golds += [g.label for g in gold]

    def compute(self) -> dict[str, float]:
        return glue_metrics(self.task, self.preds, self.golds) if self.preds else {}


class GlueTask:
    """One GLUE task (``cola``, ``sst2``, ``mrpc``, ``stsb``, ``qqp``, ``mnli``, ``qnli``, ``rte``, ``wnli``).

    Args:
        name: the task's name in this run (config key).
        glue_task: which GLUE task it is (default: ``name``).
        dropout: dropout before the output layer (MT-DNN: 0.1).
        max_length: pairs are truncated to this many subwords (longest sequence first).
    """

    input_kind = "pair"  # the collate encodes (text_a, text_b) pairs, not word lists
    cls_is_root = True  # position 0 of the encoder output is [CLS]

    def __init__(
        self, *, name: str, glue_task: str | None = None, dropout: float = 0.1, max_length: int = 512
    ):
        self.name, self.glue_task = name, glue_task_name(glue_task or name)
        spec = GLUE_TASKS[self.glue_task]
        self.labels: list[str] | None = spec["labels"]  # None: regression (STS-B)
        self.main_metric: str = spec["main_metric"]
        self.dropout, self.max_length = dropout, max_length

    @property
    def regression(self) -> bool:
        return self.labels is None

    def read(self, path: str) -> list[GlueExample]:
        from mtlheads.data.glue_reader import read_glue

        return read_glue(path, task=self.glue_task)

    def fit_vocab(self, train: list[GlueExample]) -> None:
        """GLUE label sets are fixed by the task; nothing to learn from the data."""

    def vocab_state(self) -> dict:
        return {"labels": self.labels}

    def load_vocab_state(self, state: dict) -> None:
        self.labels = state["labels"]

    def build_decoder(self, hidden_size: int) -> nn.Module:
        n = 1 if self.regression else len(self.labels)
        return SentenceClassifier(hidden_size=hidden_size, num_outputs=n, dropout=self.dropout)

    def targets(self, batch: list[GlueExample]) -> dict[str, torch.Tensor]:
        if any(e.label is None for e in batch):
            raise ValueError(
                f"{batch[0].source}: GLUE test files have no labels; use them for prediction only"
            )
        if self.regression:
            return {"labels": torch.tensor([float(e.label) for e in batch])}
        return {"labels": torch.tensor([self.labels.index(str(e.label)) for e in batch])}

    def loss(self, out: torch.Tensor, targets: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        gold = targets["labels"].to(out.device)
        if self.regression:
            return F.mse_loss(out.squeeze(-1), gold.to(out.dtype))
        return F.cross_entropy(out, gold)

    def decode(self, out: torch.Tensor, mask: torch.Tensor, *, final: bool = False) -> list:
        if self.regression:
            return out.squeeze(-1).tolist()
        return [self.labels[i] for i in out.argmax(-1).tolist()]

    def new_metric(self) -> GlueMetric:
        return GlueMetric(self.glue_task)
