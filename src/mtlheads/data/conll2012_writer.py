"""CoNLL-2012 prediction writers: ``*_gold_conll`` files and CoNLL-2005 props for ``srl-eval.pl``.

They follow :mod:`mtlheads.data.writers`'s conventions (``(sentence, prediction)`` pairs written as they
come, atomic files, a CoNLL-2012 source block copied with only the predicted columns replaced, ``-`` or
``*`` for what is unknown without one) and use its helpers; the bracket columns are spelled by
:mod:`~mtlheads.data.prediction_formats` (``Span`` = inclusive 0-based ``(start, end, label)``,
``Frames`` = ``[(predicate, [Span])]``):

* :func:`write_conll2012`: layers ``srl`` (one column per predicate, ``(V*)`` added on the predicate when
  the frame has no ``V``), ``con`` (parse bits and POS column from the tree) and ``ner`` (NE column).
  A predicted predicate keeps the input's roleset when it had one; otherwise its lemma column holds the
  word and its frameset ``XX`` (the reader finds predicates by their frameset).
* :func:`write_srl_props`: CoNLL-2005 props for ``srl-eval.pl`` (predicate word or ``-``, then the columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from mtlheads.data.prediction_formats import Frames, bracket_cells, parse_bits, sorted_frames
from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import to_tree
from mtlheads.data.writers import (
    UNKNOWN_TAG,
    _check_words,
    _field,
    _layers,
    _Sources,
    _stream,
    _tree,
    _words,
)

DASH_TARGET = "-DASH-"  # srl-eval props: the predicate column of a predicate whose word is "-"


def write_conll2012(path: str | Path, items: Iterable[tuple[Sentence, Mapping[str, Any]]]) -> Path:
    """CoNLL-2012 (``*_gold_conll``) with predicted layers: ``{"srl": frames, "con": tree, "ner": spans}``.

    ``con`` is a tree or bracketed string (or ``ConTask.decode`` spans). Documents are written between
    ``#begin document (<doc_id>); part NNN`` and ``#end document`` from ``meta`` (``-`` / 0 without).
    Without a CoNLL-2012 source block: POS from the tree or ``sentence.pos`` (else ``-``), parse bits from
    the tree or ``sentence.tree`` (else a flat ``(TOP* ... *)``), ``*`` NE cells, ``-`` elsewhere.

    Raises:
        ValueError: An unknown layer, crossing spans, a tree that does not fit the words, a word with
            whitespace.
    """
    sources = _Sources()

    def one(f: IO, sentence: Sentence, pred: Mapping[str, Any], state: dict) -> None:
        layers, words = _layers(pred, {"srl", "con", "ner"}), _words(sentence, spaces=False)
        n = len(words)
        block = sources.block(sentence)
        rows = [line.split() for line in block or [] if not line.startswith("#")]
        if rows and all(len(r) >= 12 and r[2] == str(i) for i, r in enumerate(rows)) and len(rows) == n:
            _check_words([r[3] for r in rows], sentence)
        else:
            tree = to_tree(sentence.tree) if sentence.tree else None
            bits = parse_bits(tree) if tree else ["(TOP*"] + ["*"] * (n - 1)
            bits[-1] += ")" if not tree else ""
            tags = [t for _, t in tree.pos()] if tree else sentence.pos or ["-"] * n
            doc = _field(sentence.meta.get("doc_id") or "-", "doc id", spaces=False)
            rows = [
                [doc, "0", str(i), w, tags[i], bits[i], "-", "-", "-", "-", "*", "-"]
                for i, w in enumerate(words)
            ]
        if "con" in layers:
            tree = _tree(sentence, layers["con"])
            for r, tag, bit in zip(rows, (t for _, t in tree.pos()), parse_bits(tree), strict=True):
                r[4], r[5] = _field(tag, "POS tag", spaces=False), bit
        if "ner" in layers:
            for r, cell in zip(rows, bracket_cells(layers["ner"], n, nested=False, single=True), strict=True):
                r[10] = cell
        if "srl" in layers:
            frames = sorted_frames(layers["srl"], n, add_verb=True)
            columns = [bracket_cells(args, n) for _, args in frames]
            predicates = {p for p, _ in frames}
            for i, r in enumerate(rows):
                if i not in predicates:
                    r[6:8] = ["-", "-"]
                elif r[7] == "-":
                    r[6:8] = [r[3], UNKNOWN_TAG]
                r[11:-1] = [col[i] for col in columns]
        doc = (sentence.meta.get("doc_id") or rows[0][0], int(sentence.meta.get("part") or rows[0][1]))
        if doc != state.get("doc"):
            f.write(state.pop("close", "") + f"#begin document ({doc[0]}); part {doc[1]:03d}\n")
            state["doc"], state["close"] = doc, "#end document\n"
        f.write("".join(" ".join(r) + "\n" for r in rows) + "\n")

    return _stream(path, items, one)


def write_srl_props(path: str | Path, items: Iterable[tuple[Sentence, Frames]]) -> Path:
    """CoNLL-2005 props (``srl-eval.pl`` input): the predicate's word (``-`` elsewhere; a predicate that is
    the word ``-`` is written :data:`DASH_TARGET`), then one column per predicate, ``(V*)`` added where a
    frame has no V. Write the gold file the same way (gold frames as
    predictions): srl-eval.pl pairs gold and predicted predicates by position and word."""

    def one(f: IO, sentence: Sentence, frames: Frames, state: dict) -> None:
        words = _words(sentence, spaces=False)
        frames = sorted_frames(frames, len(words), add_verb=True)
        columns = [bracket_cells(args, len(words)) for _, args in frames]
        # "-" marks a non-predicate row: a predicate whose word is "-" is spelled DASH_TARGET instead
        targets = {p: words[p] if words[p] != "-" else DASH_TARGET for p, _ in frames}
        f.write(
            "".join(
                " ".join([targets.get(i, "-"), *(c[i] for c in columns)]) + "\n" for i in range(len(words))
            )
        )
        f.write("\n")

    return _stream(path, items, one)
