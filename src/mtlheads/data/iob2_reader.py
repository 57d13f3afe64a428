"""IOB2 named-entity reader for the Universal NER (UNER) layout, and IOB2 <-> span conversion.

UNER files look like CoNLL-U: ``#`` comments (``# sent_id``, ``# text``, ...), then one line
per word ``index<TAB>word<TAB>tag<TAB>...`` (index from 1), and a blank line after each sentence.
"""

from __future__ import annotations

import re
from pathlib import Path

from mtlheads.data.conllu_reader import read_lines, split_blocks
from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence

_TAG = re.compile(r"([BI])-(\S+)")


class IOB2Error(ValueError):
    """An invalid IOB2 tag sequence; ``index`` is the 0-based position of the offending tag."""

    def __init__(self, index: int, message: str):
        self.index, self.reason = index, message
        super().__init__(f"tag {index}: {message}")


def iob2_to_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Convert strict IOB2 tags to inclusive entity spans.

    Args:
        tags: One tag per word: ``O``, ``B-TYPE`` or ``I-TYPE``.

    Returns:
        ``(start, end, type)`` spans, inclusive, in order.

    Raises:
        IOB2Error: A malformed tag, or an ``I-TYPE`` that does not continue a ``TYPE`` entity
            (strict IOB2: every entity starts with ``B-``).
    """
    spans: list[tuple[int, int, str]] = []
    open_type: str | None = None  # type of the entity the previous word belongs to
    for i, tag in enumerate(tags):
        if tag == "O":
            open_type = None
            continue
        m = _TAG.fullmatch(tag)
        if not m:
            raise IOB2Error(i, f"bad tag {tag!r} (expected O, B-TYPE or I-TYPE)")
        bio, typ = m.groups()
        if bio == "B":
            spans.append((i, i, typ))
            open_type = typ
        elif open_type != typ:
            after = f"{open_type} entity" if open_type else "O" if i else "sentence start"
            raise IOB2Error(i, f"{tag!r} does not continue an entity of type {typ} (follows {after})")
        else:
            start, _, _ = spans[-1]
            spans[-1] = (start, i, typ)
    return spans


def spans_to_iob2(spans: list[tuple[int, int, str]], n: int) -> list[str]:
    """Convert inclusive entity spans to IOB2 tags.

    Args:
        spans: ``(start, end, type)`` spans, inclusive; must not overlap.
        n: Number of words.

    Returns:
        ``n`` tags.

    Raises:
        ValueError: A span out of range, empty, or overlapping another.
    """
    tags = ["O"] * n
    for start, end, typ in spans:
        if not 0 <= start <= end < n:
            raise ValueError(f"span {(start, end, typ)} out of range for {n} words")
        if any(t != "O" for t in tags[start : end + 1]):
            raise ValueError(f"span {(start, end, typ)} overlaps another span")
        tags[start : end + 1] = [f"B-{typ}"] + [f"I-{typ}"] * (end - start)
    return tags


def read_iob2(path: str | Path, *, normalize: bool = True) -> list[Sentence]:
    """Read a UNER-layout IOB2 file.

    ``meta`` holds ``sent_id``, ``doc_id`` (last ``# newdoc id``) and ``text`` where present.
    Entity types are kept as written (UNER: PER, ORG, LOC).

    Args:
        path: The ``.iob2`` file.
        normalize: Apply :func:`normalize_token` to the words.

    Returns:
        One :class:`Sentence` per block with ``words`` and ``entities`` filled.

    Raises:
        DataFormatError: Missing file, a token line with fewer than 3 tab-separated columns,
            a non-sequential index, a bad tag, an ``I-`` tag that continues nothing, or an empty sentence.
    """
    path = str(path)
    sentences: list[Sentence] = []
    doc_id = None
    for block in split_blocks(read_lines(path)):
        meta: dict = {}
        words: list[str] = []
        tags: list[str] = []
        lines: list[int] = []
        for no, line in block:
            if line.startswith("#"):
                # "# key = value" comments, as in CoNLL-U; other comments are ignored.
                key, eq, value = line[1:].partition("=")
                if eq:
                    meta[key.strip()] = value.strip()
                continue
            cols = line.split("\t")
            if len(cols) < 3:
                raise DataFormatError(path, no, f"expected 3 or more tab-separated columns, got {len(cols)}")
            if cols[0] != str(len(words) + 1):
                raise DataFormatError(path, no, f"token index {cols[0]!r}, expected {len(words) + 1}")
            words.append(normalize_token(cols[1]) if normalize else cols[1])
            tags.append(cols[2].strip())  # a 3-column line may carry trailing spaces after the tag
            lines.append(no)
        if not words:
            raise DataFormatError(path, block[0][0], "empty sentence (no token lines)")
        try:
            entities = iob2_to_spans(tags)
        except IOB2Error as e:
            raise DataFormatError(path, lines[e.index], e.reason) from None
        doc_id = meta.get("newdoc id", doc_id)
        sentences.append(
            Sentence(
                words=words,
                source=f"{path}:{block[0][0]}",
                entities=entities,
                meta={"sent_id": meta.get("sent_id"), "doc_id": doc_id, "text": meta.get("text")},
            )
        )
    return sentences
