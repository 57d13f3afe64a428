"""CoNLL-U reader (UD treebanks): words, XPOS, basic dependency trees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import conllu

from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence

Block = list[tuple[int, str]]  # (1-based line number, line without newline)

# FEATS, DEPS and MISC are not used by any layer; keeping them as raw strings halves the parse time.
_RAW_FIELDS = {name: (lambda cols, i: cols[i]) for name in ("feats", "deps", "misc")}


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file as lines without newlines, raising DataFormatError if it cannot be read.

    Args:
        path: File to read.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a leading BOM would hide the first "#"
            return f.read().splitlines()
    except FileNotFoundError:
        raise DataFormatError(str(path), None, "file not found") from None
    except UnicodeDecodeError as e:
        raise DataFormatError(str(path), None, f"not UTF-8: {e}") from None
    except OSError as e:
        raise DataFormatError(str(path), None, f"cannot read: {e}") from None


def split_blocks(lines: list[str]) -> Iterator[Block]:
    """Group lines into blank-line-separated blocks, keeping each line's 1-based number.

    Runs of blank lines separate blocks; they never produce empty blocks.

    Args:
        lines: Lines of a file, as returned by :func:`read_lines`.
    """
    block: Block = []
    for no, line in enumerate(lines, 1):
        if line.strip():
            block.append((no, line))
        elif block:
            yield block
            block = []
    if block:
        yield block


def _parse_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _check_block(path: str, block: Block) -> list[tuple[int, list[str]]]:
    """Validate a sentence block's token lines; return (line number, columns) of integer-id tokens."""
    tokens: list[tuple[int, list[str]]] = []
    for no, line in block:
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(path, no, f"expected 10 tab-separated columns, found {len(cols)}")
        tid = cols[0]
        # Multiword-token ranges (3-4) and empty nodes (8.1) are not syntactic words.
        if "-" in tid or "." in tid:
            continue
        if _parse_int(tid) != len(tokens) + 1:
            raise DataFormatError(path, no, f"token id {tid!r}, expected {len(tokens) + 1}")
        tokens.append((no, cols))
    if not tokens:
        raise DataFormatError(path, block[0][0], "empty sentence (no token lines)")
    for no, cols in tokens:
        head = _parse_int(cols[6])
        if head is None:
            raise DataFormatError(path, no, f"head {cols[6]!r} is not an integer")
        if not 0 <= head <= len(tokens):
            raise DataFormatError(path, no, f"head {head} out of range 0..{len(tokens)}")
    return tokens


def _failing_line(block: Block) -> int:
    """Line number of the first line conllu rejects on its own (the block's first line if none does)."""
    for no, line in block:
        try:
            conllu.parse_token_and_metadata(line, field_parsers=_RAW_FIELDS)
        except Exception:
            return no
    return block[0][0]


def read_conllu(path: str | Path, *, normalize: bool = True) -> list[Sentence]:
    """Read a CoNLL-U file.

    Only integer-id lines (syntactic words) are kept. ``pos`` holds XPOS (PTB tags);
    ``meta`` holds ``sent_id``, ``doc_id`` (last ``# newdoc id``), ``text``, ``upos`` and ``lemmas``.

    Args:
        path: The ``.conllu`` file.
        normalize: Apply :func:`normalize_token` to the words.

    Returns:
        One :class:`Sentence` per sentence block, in file order.

    Raises:
        DataFormatError: Missing file, a line without 10 columns, non-sequential ids, a
            non-integer or out-of-range head, an empty sentence, or anything ``conllu`` rejects.
    """
    path = str(path)
    sentences: list[Sentence] = []
    doc_id = None
    for block in split_blocks(read_lines(path)):
        start = block[0][0]
        tokens = _check_block(path, block)
        try:
            parsed = conllu.parse_token_and_metadata(
                "\n".join(line for _, line in block), field_parsers=_RAW_FIELDS
            )
        except Exception as e:  # conllu raises ParseException, ValueError, ...: all mean bad input
            raise DataFormatError(path, _failing_line(block), f"conllu could not parse: {e}") from None
        # Fields come from our own tab split: conllu also splits on runs of 2+ spaces, which would
        # shift the columns of a FORM containing spaces. conllu supplies the metadata and validation.
        if sum(isinstance(t["id"], int) for t in parsed) != len(tokens):
            raise DataFormatError(path, start, "conllu disagrees on the number of tokens")
        doc_id = parsed.metadata.get("newdoc id", doc_id)
        forms = [cols[1] for _, cols in tokens]
        sentences.append(
            Sentence(
                words=[normalize_token(w) for w in forms] if normalize else forms,
                source=f"{path}:{start}",
                pos=[cols[4] for _, cols in tokens],
                heads=[int(cols[6]) for _, cols in tokens],
                rels=[cols[7] for _, cols in tokens],
                meta={
                    "sent_id": parsed.metadata.get("sent_id"),
                    "doc_id": doc_id,
                    "text": parsed.metadata.get("text"),
                    "upos": [cols[3] for _, cols in tokens],
                    "lemmas": [cols[2] for _, cols in tokens],
                },
            )
        )
    return sentences
