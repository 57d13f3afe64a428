"""What a task is: a small object the trainer composes with the shared encoder.

A task reads its own file format, owns its label vocabulary, builds its decoder, and knows
its loss, decoding and metric. The trainer never looks inside; it only calls these methods.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from mtlheads.data.sentence import Sentence


class Metric(Protocol):
    def update(self, preds: list[Any], gold: list[Sentence]) -> None: ...
    def compute(self) -> dict[str, float]: ...


class Task(Protocol):
    """Interface every task implements (POS, NER, DEP now; CON, SRL, GLUE later).

    Shapes: ``hidden`` is (B, N, D) word vectors; ``mask`` is (B, N) bool, True on real words.
    When ``cls_is_root`` is True the encoder prepends the [CLS] vector, so position 0 is ROOT,
    words sit at 1..n and ``mask[:, 0]`` is True.
    """

    name: str
    cls_is_root: bool
    # Optional: input_kind = "pair" makes the collate encode (text_a, text_b) pairs instead of word lists.
    main_metric: str  # key of compute() used for model selection, e.g. "acc", "f1", "las"

    def read(self, path: str) -> list[Sentence]: ...
    def fit_vocab(self, train: list[Sentence]) -> None: ...
    def vocab_state(self) -> dict: ...
    def load_vocab_state(self, state: dict) -> None: ...
    def build_decoder(self, hidden_size: int) -> nn.Module: ...
    def targets(self, batch: list[Sentence]) -> dict[str, torch.Tensor]: ...
    def loss(self, out: Any, targets: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor: ...
    def decode(self, out: Any, mask: torch.Tensor, *, final: bool) -> list[Any]: ...
    def new_metric(self) -> Metric: ...
