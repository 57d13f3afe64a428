"""The label vocabulary every structured task keeps: an ordered list, its index, and checkpoint state."""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar


class LabelVocab:
    """Mixin: ``labels`` (the decoder's output order), their index, and a reserved unknown index.

    A task fits ``labels`` on its training data (``set_labels``); checkpoints store ``vocab_state()`` and a
    loaded model gets the same order back through ``load_vocab_state``, so decoder rows keep their meaning.
    """

    vocab_key: ClassVar[str] = "labels"  # the key in the checkpoint's vocabulary state
    first_label: ClassVar[str | None] = None  # a label that must have index 0 (the null label of span tasks)
    labels: list[str] = []  # noqa: RUF012 - only ever reassigned, by set_labels
    _index: MappingProxyType = MappingProxyType({})

    def set_labels(self, labels: list[str]) -> None:
        if self.first_label is not None and (not labels or labels[0] != self.first_label):
            raise ValueError(f"label 0 must be {self.first_label!r}, got {labels[:1]}")
        self.labels = list(labels)
        self._index = MappingProxyType({lab: i for i, lab in enumerate(labels)})

    def vocab_state(self) -> dict:
        return {self.vocab_key: list(self.labels)}

    def load_vocab_state(self, state: dict) -> None:
        self.set_labels(list(state[self.vocab_key]))

    @property
    def unk_index(self) -> int:
        """Reserved index for labels absent from the vocabulary (trained against, never predicted)."""
        return len(self.labels)

    def label_index(self, label: str, default: int | None = None) -> int:
        """The label's index; ``default`` (``unk_index`` if None) for a label not in the vocabulary."""
        return self._index.get(label, self.unk_index if default is None else default)

    def require_labels(self) -> None:
        if not self.labels:
            raise RuntimeError(
                f"{type(self).__name__}.build_decoder called before fit_vocab/load_vocab_state"
            )
