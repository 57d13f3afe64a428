"""CoNLL-2012 (OntoNotes ``*_gold_conll``) reader: words, POS, constituency tree, NEs and PropBank SRL.

Columns (split on whitespace): 1 document id, 2 part, 3 word number, 4 word, 5 POS, 6 parse bit,
7 predicate lemma, 8 frameset id, 9 word sense, 10 speaker, 11 named entities,
12 .. N-1 one SRL column per predicate, N coreference. Documents are wrapped in
``#begin document (<id>); part <n>`` / ``#end document``; a blank line ends each sentence.
"""

from __future__ import annotations

import re
from pathlib import Path

import nltk

from mtlheads.data.conllu_reader import read_lines
from mtlheads.data.ptb import escape_leaf, normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence

MIN_COLUMNS = 12  # 11 fixed columns + coreference, i.e. a sentence with no predicates
_BEGIN = re.compile(r"#begin document \((.*)\); part (\d+)\s*")
# A bracket cell: any number of "(LABEL" openings, one "*", any number of ")" closings.
_CELL = re.compile(r"((?:\([^()*\s]+)*)\*(\)*)")
_SINGLE = re.compile(r"\(([^()*\s]+)\)")  # OntoNotes NE shorthand for a one-word span: "(ORG)"

Rows = list[tuple[int, list[str]]]  # (1-based line number, columns)


def _bracket_spans(
    path: str, cells: list[str], lines: list[int], what: str, *, nested: bool, single: bool = False
) -> list[tuple[int, int, str]]:
    """Parse one bracket column into sorted inclusive ``(start, end, label)`` spans.

    Errors name the line of the offending cell; an unclosed span is reported where it opens.
    """
    spans: list[tuple[int, int, str]] = []
    stack: list[tuple[str, int]] = []
    for i, cell in enumerate(cells):
        if cell == "*":  # by far the most common cell: skip the regex
            continue
        m = _SINGLE.fullmatch(cell) if single else None
        if m:
            opens, closes = [m.group(1)], 1
        else:
            m = _CELL.fullmatch(cell)
            if not m:
                raise DataFormatError(path, lines[i], f"bad {what} cell {cell!r}")
            opens, closes = m.group(1).split("(")[1:], len(m.group(2))
        for label in opens:
            if stack and not nested:
                outer, s = stack[-1]
                raise DataFormatError(
                    path, lines[i], f"nested {what} span {label!r} inside {outer!r} opened on line {lines[s]}"
                )
            stack.append((label, i))
        for _ in range(closes):
            if not stack:
                raise DataFormatError(path, lines[i], f"unbalanced brackets in {what}: ')' closes nothing")
            label, s = stack.pop()
            spans.append((s, i, label))
    if stack:
        label, s = stack[-1]
        msg = f"unbalanced brackets in {what}: {label!r} opened here is never closed"
        raise DataFormatError(path, lines[s], msg)
    spans.sort()
    return spans


def _sentence(path: str, rows: Rows, doc: dict, normalize: bool) -> Sentence:
    """Validate one sentence's rows and build its :class:`Sentence`."""
    start = rows[0][0]
    ncol = len(rows[0][1])
    if ncol < MIN_COLUMNS:
        raise DataFormatError(path, start, f"too few columns: {ncol}, need at least {MIN_COLUMNS}")
    for i, (no, cols) in enumerate(rows):
        if len(cols) != ncol:
            raise DataFormatError(path, no, f"{len(cols)} columns, but the sentence's first line has {ncol}")
        if cols[2] != str(i):
            raise DataFormatError(path, no, f"word number {cols[2]!r}, expected {i}")
    lines = [no for no, _ in rows]
    raw = [cols[3] for _, cols in rows]
    words = [normalize_token(w) for w in raw] if normalize else raw
    pos = [cols[4] for _, cols in rows]

    bits = [cols[5] for _, cols in rows]
    _bracket_spans(path, bits, lines, "parse bits", nested=True)  # balance, with a precise line
    leaf_strs = (f"({escape_leaf(p)} {escape_leaf(w)})" for p, w in zip(pos, words, strict=True))
    tree = "".join(b.replace("*", leaf, 1) for b, leaf in zip(bits, leaf_strs, strict=True))
    # Every bit holds exactly one "*" (checked above), so the leaves are the words; nltk checks the rest
    # (a single root, no stray text between brackets).
    try:
        nltk.Tree.fromstring(tree)
    except ValueError as e:
        reason = " ".join(str(e).split())  # nltk's message spans several lines
        raise DataFormatError(path, start, f"parse bits do not form one tree: {reason}") from None

    entities = _bracket_spans(path, [c[10] for _, c in rows], lines, "NE column", nested=False, single=True)
    preds = [i for i, (_, cols) in enumerate(rows) if cols[7] != "-"]
    n_srl = ncol - MIN_COLUMNS
    if len(preds) != n_srl:
        raise DataFormatError(
            path, start, f"{len(preds)} predicate(s) (frameset ids) but {n_srl} SRL column(s)"
        )
    srl = [
        (p, _bracket_spans(path, [c[11 + k] for _, c in rows], lines, f"SRL column {k + 1}", nested=True))
        for k, p in enumerate(preds)
    ]
    return Sentence(
        words=words,
        source=f"{path}:{start}",
        pos=pos,
        tree=tree,
        entities=entities,
        srl=srl,
        meta={**doc, "rolesets": [f"{rows[p][1][6]}.{rows[p][1][7]}" for p in preds]},
    )


def read_conll2012(path: str | Path, *, normalize: bool = True) -> list[Sentence]:
    """Read a CoNLL-2012 ``*_gold_conll`` file.

    ``tree`` is the bracketed tree (parse bits with ``*`` -> ``(POS word)``; brackets and
    backslashes in leaves spelled ``-LRB-``/``-RRB-``/``-BSL-``, see :func:`~mtlheads.data.ptb.escape_leaf`).
    ``entities`` come from the NE column (types as written: PERSON, ORG, LOC, ...); ``srl`` has one
    ``(predicate index, spans)`` per SRL column, V and C-V spans included. ``meta`` holds ``doc_id``,
    ``part``, ``sent_index`` (within the document) and ``rolesets`` (``lemma.frameset`` per predicate).

    Args:
        path: The ``*_gold_conll`` file.
        normalize: Apply :func:`normalize_token` to the words (and hence the tree leaves).

    Returns:
        One :class:`Sentence` per sentence, in file order.

    Raises:
        DataFormatError: Missing file, too few or inconsistent columns, unbalanced brackets in the
            parse bits / NE / SRL columns, nested NEs, a predicate count different from the SRL column
            count, an empty sentence or document, or a sentence outside ``#begin``/``#end document``.
    """
    path = str(path)
    lines = read_lines(path)
    sentences: list[Sentence] = []
    doc: dict | None = None  # {"doc_id", "part"} of the open document
    doc_line = n_sent = 0
    rows: Rows = []
    after_break = False  # previous line was #begin document or a blank line

    def flush() -> None:
        nonlocal rows, n_sent
        sentences.append(_sentence(path, rows, {**(doc or {}), "sent_index": n_sent}, normalize))
        n_sent += 1
        rows = []

    for no, line in enumerate(lines, 1):
        if line.startswith("#begin document"):
            if doc is not None:
                raise DataFormatError(path, no, f"#begin document inside the one opened on line {doc_line}")
            m = _BEGIN.fullmatch(line)
            if not m:
                raise DataFormatError(path, no, "expected '#begin document (<id>); part <n>'")
            doc, doc_line, n_sent, after_break = {"doc_id": m.group(1), "part": int(m.group(2))}, no, 0, True
        elif line.startswith("#end document"):
            if doc is None:
                raise DataFormatError(path, no, "#end document without #begin document")
            if rows:
                flush()
            if n_sent == 0:
                raise DataFormatError(path, doc_line, "empty document (no sentences)")
            doc = None
        elif line.startswith("#"):  # other comments carry nothing we need
            continue
        elif not line.strip():
            if rows:
                flush()
            elif doc is not None and after_break:
                raise DataFormatError(path, no, "empty sentence (blank line where a sentence should start)")
            after_break = True
        else:
            if doc is None:
                raise DataFormatError(path, no, "sentence outside a document (no #begin document)")
            rows.append((no, line.split()))
            after_break = False
    if doc is not None:
        raise DataFormatError(path, len(lines), f"document opened on line {doc_line} is never closed")
    return sentences
