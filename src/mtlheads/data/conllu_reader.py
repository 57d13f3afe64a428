"""CoNLL-U reader (UD treebanks): words, XPOS, basic dependency trees."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

import conllu

from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence

Block = list[tuple[int, str]]  # (1-based line number, line without newline)

# FEATS, DEPS and MISC are not used by any layer; keeping them as raw strings halves the parse time.
_RAW_FIELDS = {name: (lambda cols, i: cols[i]) for name in ("feats", "deps", "misc")}


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file (a leading BOM dropped), raising DataFormatError if it cannot be read.

    A byte sequence that is not UTF-8 is reported with its line and column, not a byte offset.

    Args:
        path: File to read.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataFormatError(str(path), None, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(str(path), None, "is a directory, not a file") from None
    except OSError as e:
        raise DataFormatError(str(path), None, f"cannot read: {e.strerror or e}") from None
    # The BOM is stripped by hand: decoding with utf-8-sig would count error offsets from after it.
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = body.rfind(b"\n", 0, e.start) + 1
        raise DataFormatError(
            str(path),
            body.count(b"\n", 0, e.start) + 1,
            f"not UTF-8: byte {body[e.start]:#04x} at column {e.start - line_start + 1} ({e.reason}); "
            "save the file as UTF-8",
        ) from None


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file as lines without newlines, raising DataFormatError if it cannot be read.

    Args:
        path: File to read.
    """
    return read_text(path).splitlines()


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


_RANGE = re.compile(r"(\d+)-(\d+)")
_EMPTY_NODE = re.compile(r"(\d+)\.(\d+)")


def _check_block(path: str, block: Block) -> list[tuple[int, list[str]]]:
    """Validate a sentence block's token lines; return (line number, columns) of integer-id tokens.

    Beyond the columns and ids: multiword-token ranges and empty nodes lie inside the sentence, and the
    heads form one tree (exactly one root, no cycle); non-projective trees are fine.
    """
    tokens: list[tuple[int, list[str]]] = []
    ranges: list[tuple[int, int, int]] = []  # (line, first word, last word) of each multiword token
    empty_nodes: list[tuple[int, int]] = []  # (line, word it follows)
    for no, line in block:
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(path, no, f"expected 10 tab-separated columns, found {len(cols)}")
        tid = cols[0]
        # Multiword-token ranges (3-4) and empty nodes (8.1) are not syntactic words. Ids conllu cannot
        # parse either (1-x) are left to its own error.
        if "-" in tid:
            if m := _RANGE.fullmatch(tid):
                first, last = int(m.group(1)), int(m.group(2))
                if first != len(tokens) + 1 or (ranges and first <= ranges[-1][2]):
                    raise DataFormatError(
                        path, no, f"multiword token {tid} must come right before word {len(tokens) + 1}"
                    )
                if last <= first:
                    raise DataFormatError(path, no, f"multiword token {tid}: the range must span 2+ words")
                ranges.append((no, first, last))
            continue
        if "." in tid:
            if m := _EMPTY_NODE.fullmatch(tid):
                empty_nodes.append((no, int(m.group(1))))
            continue
        if _parse_int(tid) != len(tokens) + 1:
            raise DataFormatError(path, no, f"token id {tid!r}, expected {len(tokens) + 1}")
        tokens.append((no, cols))
    if not tokens:
        raise DataFormatError(path, block[0][0], "empty sentence (no token lines)")
    n = len(tokens)
    for no, first, last in ranges:
        if last > n:
            raise DataFormatError(
                path, no, f"multiword token {first}-{last} runs past the sentence's last word ({n})"
            )
    for no, word in empty_nodes:
        if word > n:
            raise DataFormatError(path, no, f"empty node after word {word}, but the sentence has {n} words")
    heads = []
    for no, cols in tokens:
        head = _parse_int(cols[6])
        if head is None:
            raise DataFormatError(path, no, f"head {cols[6]!r} is not an integer")
        if not 0 <= head <= n:
            raise DataFormatError(path, no, f"head {head} out of range 0..{n}")
        heads.append(head)
    _check_tree(path, heads, [no for no, _ in tokens])
    return tokens


def _check_tree(path: str, heads: list[int], lines: list[int]) -> None:
    """Raises DataFormatError unless ``heads`` (1-based, 0 = root) form a tree: one root, no cycle."""
    state = [0] * (len(heads) + 1)  # per word: 0 unseen, 1 on the path being followed, 2 reaches the root
    state[0] = 2
    for start in range(1, len(heads) + 1):
        path_: list[int] = []
        word = start
        while state[word] == 0:
            state[word] = 1
            path_.append(word)
            word = heads[word - 1]
        if state[word] == 1:  # came back to a word of this path: a cycle
            cycle = path_[path_.index(word) :]
            first = min(cycle)
            order = cycle[cycle.index(first) :] + cycle[: cycle.index(first)] + [first]
            roots = " (and the sentence has no root)" if 0 not in heads else ""
            raise DataFormatError(
                path,
                lines[first - 1],
                f"dependency cycle {' -> '.join(map(str, order))}: these words never reach the root{roots}",
            )
        for w in path_:
            state[w] = 2
    roots = [i + 1 for i, h in enumerate(heads) if h == 0]
    if len(roots) > 1:
        raise DataFormatError(
            path,
            lines[roots[1] - 1],
            f"word {roots[1]} is a second root (head 0, as word {roots[0]}): a tree has exactly one",
        )


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
