"""The one record every reader returns, and the error every reader raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlheads.errors import UserError


class DataFormatError(UserError, ValueError):
    """Malformed input, located by file and (1-based) line number: a user error (:mod:`mtlheads.errors`)."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass
class Sentence:
    """One sentence with whatever layers its file carries (None = layer absent).

    Word indices are 0-based over ``words``; spans are inclusive ``(start, end, label)``.
    ``heads`` are 1-based with 0 = ROOT (CoNLL-U convention).
    ``srl`` maps each predicate's word index to its argument spans (V/C-V included as read).
    """

    words: list[str]
    source: str = ""  # "path:line" of the sentence's first line, for error messages
    pos: list[str] | None = None
    heads: list[int] | None = None
    rels: list[str] | None = None
    entities: list[tuple[int, int, str]] | None = None
    tree: str | None = None  # bracketed PTB tree with (POS word) leaves
    srl: list[tuple[int, list[tuple[int, int, str]]]] | None = None
    meta: dict = field(default_factory=dict)
