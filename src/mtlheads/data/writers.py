"""Prediction writers: a task's ``decode()`` output in the task's own file format, gold columns replaced.

Every writer takes an iterable of ``(sentence, prediction)`` pairs (the :class:`Sentence` as our readers
return it, and the task's ``decode()`` output for it), writes sentence by sentence as the pairs come, and
is atomic (:func:`~mtlheads.utils.io.atomic_write`): the file appears whole at the end, and a writer that
fails (bad prediction, failing iterable) leaves no partial file; an existing file keeps its old content.

**Source blocks.** A sentence remembers where it was read (``Sentence.source = "path:line"``). When that
block is in the writer's format, the writer copies it and replaces only the predicted columns: every
other column, comment and multiword-token line stays as in the input, raw word forms included (official
scorers compare them with the gold file). Otherwise (no source, a file in another format, a file that is
gone) the lines are built from the sentence's fields, and what is unknown is ``_`` (CoNLL-U), ``-`` or
``*`` (CoNLL-2012): a sentence with only ``words`` is enough. A source block whose words differ from
the sentence's raises ValueError (the file changed since it was read).

Formats (``Span`` = inclusive 0-based ``(start, end, label)``, ``Frames`` = ``[(predicate, [Span])]``):

* :func:`write_conllu`: layers ``pos`` (tags → XPOS), ``dep`` ((heads, rels) → HEAD, DEPREL), ``ner``
  (spans) and ``srl`` (frames) → MISC, see :mod:`~mtlheads.data.prediction_formats`.
* :func:`write_iob2`: UNER layout ``index, word, tag, -, -``.
* :func:`write_ptb`: one bracketed ``(TOP ...)`` tree per line (leaves escaped, ``(`` → ``-LRB-``).

The CoNLL-2012 writers (``*_gold_conll``, ``srl-eval.pl`` props) are in
:mod:`~mtlheads.data.conll2012_writer`, the GLUE submission writer in :mod:`~mtlheads.data.glue_predictions`;
they share this module's helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from nltk import Tree

from mtlheads.data.conllu_reader import read_lines
from mtlheads.data.iob2_reader import spans_to_iob2
from mtlheads.data.prediction_formats import Span, merge_misc, misc_items
from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence
from mtlheads.data.trees import spans_to_tree, to_string, to_tree
from mtlheads.utils.io import atomic_write

UNKNOWN_TAG = "XX"  # POS of a word with no tag in a built tree; frameset of a predicted predicate


def _field(value: object, what: str, *, spaces: bool = True) -> str:
    """``value`` as a column value: non-empty, no tab or newline (no whitespace at all if not ``spaces``)."""
    text = str(value)
    if not text or re.search(r"[\t\n\r]" if spaces else r"\s", text):
        raise ValueError(f"{what} {text!r} cannot be written as a column (empty or contains whitespace)")
    return text


class _Sources:
    """The input blocks sentences were read from; keeps the few files last used in memory."""

    def __init__(self) -> None:
        self._files: dict[str, list[str] | None] = {}

    def block(self, sentence: Sentence) -> list[str] | None:
        """Lines from ``sentence.source`` to the next blank line, or None when there is no such file."""
        path, sep, line = sentence.source.rpartition(":")
        if not sep or not line.isdigit():
            return None
        if path not in self._files:
            if len(self._files) >= 4:
                self._files.pop(next(iter(self._files)))
            try:
                self._files[path] = read_lines(path)
            except DataFormatError:
                self._files[path] = None
        lines, out = self._files[path], []
        for text in (lines or [])[int(line) - 1 :]:
            if not text.strip():
                break
            out.append(text)
        return out or None


def _check_words(forms: list[str], sentence: Sentence) -> None:
    if forms != sentence.words and [normalize_token(w) for w in forms] != sentence.words:
        raise ValueError(f"{sentence.source}: the words there differ from the sentence's (file changed?)")


def _tab_block(sources: _Sources, sentence: Sentence, ncol: int) -> list[str | list[str]] | None:
    """The source block as comment lines (str) and split token lines, if every token line has ``ncol``
    tab-separated columns (``ncol=0``: at least 3); None when there is no such block."""
    block = sources.block(sentence)
    if block is None:
        return None
    out: list[str | list[str]] = []
    for text in block:
        cols = text.split("\t")
        if text.startswith("#"):
            out.append(text)
        elif (len(cols) != ncol) if ncol else (len(cols) < 3):
            return None
        else:
            out.append(cols if cols[0].isdigit() else text)  # "3-4" / "8.1" lines are copied as they are
    _check_words([x[1] for x in out if isinstance(x, list)], sentence)
    return out


def _comments(sentence: Sentence, state: dict) -> list[str]:
    """``# newdoc id`` (when the document changes), ``# sent_id`` and ``# text`` from ``sentence.meta``."""
    meta, out = sentence.meta, []
    doc = meta.get("doc_id")
    if doc is not None and doc != state.get("doc"):
        out.append(f"# newdoc id = {_field(doc, 'doc id')}")
    state["doc"] = doc
    if meta.get("sent_id"):
        out.append(f"# sent_id = {_field(meta['sent_id'], 'sent id')}")
    out.append(f"# text = {_field(meta.get('text') or ' '.join(sentence.words), 'text')}")
    return out


def _words(sentence: Sentence, *, spaces: bool = True) -> list[str]:
    if not sentence.words:
        raise ValueError(f"{sentence.source or 'sentence'}: no words")
    return [_field(w, "word", spaces=spaces) for w in sentence.words]


def _stream(path: str | Path, items: Iterable, write_one: Callable[[IO, Any, Any, dict], None]) -> Path:
    def write(f: IO) -> None:
        state: dict = {}
        for sentence, pred in items:
            write_one(f, sentence, pred, state)
        if "close" in state:
            f.write(state.pop("close"))

    return atomic_write(path, write)


def _layers(pred: Mapping[str, Any], allowed: set[str]) -> Mapping[str, Any]:
    unknown = set(pred) - allowed
    if unknown:
        raise ValueError(
            f"unknown prediction layer(s) {sorted(unknown)}; this format takes {sorted(allowed)}"
        )
    return pred


# ------------------------------------------------------------------------------------------ CoNLL-U


def write_conllu(path: str | Path, items: Iterable[tuple[Sentence, Mapping[str, Any]]]) -> Path:
    """CoNLL-U with predicted layers: ``{"pos": tags, "dep": (heads, rels), "ner": spans, "srl": frames}``.

    Any subset of the layers may be given. XPOS, HEAD (1-based, 0 = root) and DEPREL are replaced; NER and
    SRL go into MISC. Without a CoNLL-U source block the columns come from the sentence (``meta`` lemmas,
    UPOS and ``misc``, e.g. ``SpaceAfter=No`` of raw text, ``pos``, ``heads``/``rels``) or are ``_``.

    Returns:
        The path written.

    Raises:
        ValueError: An unknown layer, a length mismatch, a head out of range, an unwritable value.
    """
    sources = _Sources()

    def one(f: IO, sentence: Sentence, pred: Mapping[str, Any], state: dict) -> None:
        layers, n = _layers(pred, {"pos", "dep", "ner", "srl"}), len(_words(sentence))
        tags = layers.get("pos")
        heads, rels = layers.get("dep") or (None, None)
        for what, values in (("POS tags", tags), ("heads", heads), ("relations", rels)):
            if values is not None and len(values) != n:
                raise ValueError(f"{sentence.source}: {len(values)} {what} for {n} words")
        if heads is not None and any(not 0 <= int(h) <= n for h in heads):
            raise ValueError(f"{sentence.source}: a head is out of range 0..{n}: {list(heads)}")
        misc = misc_items(n, layers.get("ner"), layers.get("srl"))
        block = _tab_block(sources, sentence, 10)
        if block is None:
            meta = sentence.meta
            lemmas = meta.get("lemmas") if len(meta.get("lemmas") or ()) == n else None
            upos = meta.get("upos") if len(meta.get("upos") or ()) == n else None
            base = meta.get("misc") if len(meta.get("misc") or ()) == n else None  # e.g. SpaceAfter=No
            block = [*_comments(sentence, state)]
            for i, word in enumerate(sentence.words):
                cols = [str(i + 1), word, lemmas[i] if lemmas else "_", upos[i] if upos else "_"]
                cols += [sentence.pos[i] if sentence.pos else "_", "_"]
                cols += (
                    [str(sentence.heads[i]), sentence.rels[i]]
                    if sentence.heads and sentence.rels
                    else ["_"] * 2
                )
                block.append(cols + ["_", base[i] if base else "_"])
        else:
            state["doc"] = sentence.meta.get("doc_id")
        lines, i = [], 0
        for line in block:
            if isinstance(line, list):
                if tags is not None:
                    line[4] = _field(tags[i], "POS tag")
                if heads is not None:
                    line[6], line[7] = str(int(heads[i])), _field(rels[i], "relation")
                line[9] = merge_misc(line[9], misc[i])
                line, i = "\t".join(_field(c, "CoNLL-U value") for c in line), i + 1
            lines.append(line)
        f.write("\n".join(lines) + "\n\n")

    return _stream(path, items, one)


# ------------------------------------------------------------------------------------------- IOB2


def write_iob2(path: str | Path, items: Iterable[tuple[Sentence, Sequence[Span]]]) -> Path:
    """UNER-layout IOB2 (``index, word, tag, -, -``) from predicted entity spans.

    Comment lines and raw word forms come from the source block when it is tab-separated with an index
    column (an IOB2 or CoNLL-U file), else from ``sentence.meta`` and ``sentence.words``.

    Raises:
        ValueError: Overlapping or out-of-range spans, an unwritable word.
    """
    sources = _Sources()

    def one(f: IO, sentence: Sentence, spans: Sequence[Span], state: dict) -> None:
        tags = spans_to_iob2(
            [(s, e, _field(t, "entity type", spaces=False)) for s, e, t in spans], len(_words(sentence))
        )
        block = _tab_block(sources, sentence, 0)
        if block is None:
            comments, forms = _comments(sentence, state), sentence.words
        else:
            comments = [x for x in block if isinstance(x, str) and x.startswith("#")]
            forms = [x[1] for x in block if isinstance(x, list)]
            state["doc"] = sentence.meta.get("doc_id")
        rows = [f"{i}\t{w}\t{t}\t-\t-" for i, (w, t) in enumerate(zip(forms, tags, strict=True), 1)]
        f.write("\n".join(comments + rows) + "\n\n")

    return _stream(path, items, one)


# -------------------------------------------------------------------------------------------- PTB


def _tree(sentence: Sentence, pred: str | Tree | Sequence[Span]) -> Tree:
    """A predicted tree: a bracketed string or Tree as given, or ConTask's spans built over the words and
    the sentence's POS tags (``XX`` where it has none)."""
    n = len(_words(sentence))
    if isinstance(pred, str | Tree):
        tree = to_tree(pred)
        if len(tree.leaves()) != n:
            raise ValueError(f"{sentence.source}: the tree has {len(tree.leaves())} words, the sentence {n}")
        return tree
    return spans_to_tree(list(pred), sentence.words, sentence.pos or [UNKNOWN_TAG] * n)


def write_ptb(path: str | Path, items: Iterable[tuple[Sentence, str | Tree | Sequence[Span]]]) -> Path:
    """One bracketed tree per line (EVALB input), from predicted trees or ``ConTask.decode`` spans.

    Raises:
        ValueError: A tree whose number of words differs from the sentence's, spans that cross.
    """

    def one(f: IO, sentence: Sentence, pred: Any, state: dict) -> None:
        f.write(to_string(_tree(sentence, pred)) + "\n")

    return _stream(path, items, one)
