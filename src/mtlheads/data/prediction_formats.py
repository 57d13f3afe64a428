"""Conventions of the prediction files that :mod:`mtlheads.data.writers` and
:mod:`mtlheads.data.conll2012_writer` write, and reading them back (GLUE submissions:
:mod:`mtlheads.data.glue_predictions`).

* **CoNLL-U MISC layers** (raw text, or NER/SRL next to a parse). NER: ``NER=B-PER`` / ``NER=I-PER`` on
  the words of an entity, nothing on ``O`` words. SRL: on each predicate's word,
  ``SRL=ROLE:START-END;ROLE:K;...``, one item per argument, positions being the CoNLL-U word ids (1-based,
  inclusive; ``ROLE:K`` for a one-word span), e.g. ``SRL=ARG0:1-2;ARG1:4-6;ARGM-TMP:7``; a predicate with
  no argument is ``SRL=-``. Other MISC entries (``SpaceAfter=No``, ...) are kept, ours go last.
  :func:`read_conllu_predictions` reads such a file back.
* **CoNLL-2012 bracket columns** (parse bits, NE, SRL): :func:`bracket_cells`, :func:`parse_bits` and
  :func:`sorted_frames` spell them as the OntoNotes files do, so gold layers written back give the input
  file byte for byte.
* **CoNLL 2018 attachment scores**: :func:`conll2018_attachment`, the UD shared task's UAS/LAS convention
  beside :class:`~mtlheads.tasks.dep.DepMetric`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltk import Tree

from mtlheads.data.conllu_reader import read_lines, split_blocks
from mtlheads.data.iob2_reader import IOB2Error, iob2_to_spans, spans_to_iob2
from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence
from mtlheads.data.trees import is_preterminal

NER_KEY, SRL_KEY = "NER", "SRL"
EMPTY_FRAME = "-"
_MISC_BAD = set("|=;:\t\n\r ")
_BAD_BRACKET_LABEL = re.compile(
    r"[\s()*]"
)  # would break a bracket cell  # characters that would break a MISC item or our SRL value

Span = tuple[int, int, str]
Frames = list[tuple[int, list[Span]]]  # (predicate index, [(start, end, role), ...]), 0-based


def _misc_label(label: str, what: str) -> str:
    if not label or _MISC_BAD & set(label):
        raise ValueError(
            f"{what} label {label!r} cannot be written into MISC (empty, or has one of | = ; : space)"
        )
    return label


def misc_items(n: int, entities: Sequence[Span] | None, frames: Frames | None) -> list[list[str]]:
    """Our MISC items (``NER=...``, ``SRL=...``) for each of ``n`` words.

    Raises:
        ValueError: Overlapping or out-of-range spans, a label that cannot be written, a repeated predicate.
    """
    items: list[list[str]] = [[] for _ in range(n)]
    if entities is not None:
        for i, tag in enumerate(spans_to_iob2([(s, e, _misc_label(t, "entity")) for s, e, t in entities], n)):
            if tag != "O":
                items[i].append(f"{NER_KEY}={tag}")
    for p, args in frames or []:
        if not 0 <= p < n or any(f"{SRL_KEY}=" in x for x in items[p]):
            raise ValueError(f"predicate {p} out of range for {n} words, or repeated")
        parts = []
        for s, e, role in sorted(args):
            if not 0 <= s <= e < n:
                raise ValueError(f"SRL span {(s, e, role)} out of range for {n} words")
            where = f"{s + 1}" if s == e else f"{s + 1}-{e + 1}"
            parts.append(f"{_misc_label(role, 'SRL')}:{where}")
        items[p].append(f"{SRL_KEY}={';'.join(parts) or EMPTY_FRAME}")
    return items


def merge_misc(misc: str, ours: list[str]) -> str:
    """``misc`` with its ``NER=``/``SRL=`` items replaced by ``ours`` (``_`` when nothing is left)."""
    kept = [x for x in misc.split("|") if x not in ("", "_") and x.split("=", 1)[0] not in (NER_KEY, SRL_KEY)]
    return "|".join(kept + ours) or "_"


def parse_srl_value(value: str) -> list[Span]:
    """Arguments of one ``SRL=`` value as 0-based inclusive ``(start, end, role)``, sorted.

    Raises:
        ValueError: An item that is not ``ROLE:K`` or ``ROLE:START-END``.
    """
    if value == EMPTY_FRAME:
        return []
    args = []
    for item in value.split(";"):
        role, _, where = item.rpartition(":")
        start, _, end = where.partition("-")
        if not role or not start.isdigit() or not (end or start).isdigit():
            raise ValueError(f"bad SRL item {item!r} (expected ROLE:K or ROLE:START-END)")
        args.append((int(start) - 1, int(end or start) - 1, role))
    return sorted(args)


def read_conllu_predictions(path: str | Path, *, normalize: bool = True) -> list[Sentence]:
    """Read a CoNLL-U file written by :func:`~mtlheads.data.writers.write_conllu`, MISC layers included.

    Unlike :func:`~mtlheads.data.read_conllu` it accepts ``_`` in XPOS, HEAD and DEPREL (raw-text output).
    A layer is None when the file does not carry it anywhere: ``pos`` when every XPOS is ``_``, ``heads``
    and ``rels`` when every HEAD is ``_``, ``entities`` / ``srl`` when no word has ``NER=`` / ``SRL=``.
    ``srl`` frames are in word order.

    Raises:
        DataFormatError: A line without 10 tab-separated columns, a sentence with some heads ``_`` and
            others not, a bad ``NER=`` tag sequence or ``SRL=`` value.
    """
    path = str(path)
    parsed, seen = [], {"pos": False, "dep": False, NER_KEY: False, SRL_KEY: False}
    for block in split_blocks(read_lines(path)):
        meta = {}
        rows: list[tuple[int, list[str], dict[str, str]]] = []
        for no, line in block:
            if line.startswith("#"):
                key, eq, value = line[1:].partition("=")
                if eq:
                    meta[key.strip()] = value.strip()
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise DataFormatError(path, no, f"expected 10 tab-separated columns, found {len(cols)}")
            if cols[0].isdigit():
                misc = dict(x.split("=", 1) for x in cols[9].split("|") if "=" in x)
                rows.append((no, cols, misc))
        heads = [cols[6] for _, cols, _ in rows]
        if len(set(h == "_" for h in heads)) > 1:
            raise DataFormatError(path, block[0][0], "some heads are '_' and others are not")
        seen["pos"] |= any(cols[4] != "_" for _, cols, _ in rows)
        seen["dep"] |= bool(heads) and heads[0] != "_"
        seen[NER_KEY] |= any(NER_KEY in m for *_, m in rows)
        seen[SRL_KEY] |= any(SRL_KEY in m for *_, m in rows)
        try:
            entities = iob2_to_spans([m.get(NER_KEY, "O") for *_, m in rows])
            srl = [(i, parse_srl_value(m[SRL_KEY])) for i, (*_, m) in enumerate(rows) if SRL_KEY in m]
        except (IOB2Error, ValueError) as e:
            raise DataFormatError(path, block[0][0], f"bad MISC layer: {e}") from None
        forms = [cols[1] for _, cols, _ in rows]
        parsed.append(
            Sentence(
                words=[normalize_token(w) for w in forms] if normalize else forms,
                source=f"{path}:{block[0][0]}",
                pos=[cols[4] for _, cols, _ in rows],
                heads=[int(h) for h in heads] if heads and heads[0] != "_" else None,
                rels=[cols[7] for _, cols, _ in rows],
                entities=entities,
                srl=srl,
                meta={"sent_id": meta.get("sent_id"), "text": meta.get("text")},
            )
        )
    for s in parsed:  # a layer the file does not carry is absent, not empty
        s.pos = s.pos if seen["pos"] else None
        s.rels = s.rels if seen["dep"] else None
        s.entities = s.entities if seen[NER_KEY] else None
        s.srl = s.srl if seen[SRL_KEY] else None
    return parsed


# ------------------------------------------------------------------------------------ CoNLL-2012


def bracket_cells(spans: Iterable[Span], n: int, *, nested: bool = True, single: bool = False) -> list[str]:
    """One column of ``(LABEL*``, ``*``, ``*)`` cells for ``n`` words (outer spans open first).

    Args:
        spans: Inclusive spans; nested ones are allowed when ``nested``, crossing ones never.
        n: Number of words.
        nested: Allow a span inside another.
        single: Write a one-word span as ``(LABEL)`` (the OntoNotes NE column's shorthand).

    Raises:
        ValueError: A span out of range, crossing (or, unless ``nested``, overlapping) another, or a label
            with whitespace, ``(``, ``)`` or ``*``.
    """
    opens, closes, ends = [""] * n, [0] * n, []
    for s, e, label in sorted(spans, key=lambda x: (x[0], -x[1])):
        if not 0 <= s <= e < n or not label or _BAD_BRACKET_LABEL.search(label):
            raise ValueError(f"span {(s, e, label)} is out of range for {n} words or has a bad label")
        while ends and ends[-1] < s:
            ends.pop()
        if ends and (e > ends[-1] or not nested):
            raise ValueError(f"span {(s, e, label)} crosses or overlaps another span")
        ends.append(e)
        opens[s], closes[e] = opens[s] + f"({label}", closes[e] + 1
    cells = []
    for i in range(n):
        if single and opens[i].count("(") == closes[i] == 1:
            cells.append(f"{opens[i]})")
        else:
            cells.append(f"{opens[i]}*{')' * closes[i]}")
    return cells


def parse_bits(tree: Tree) -> list[str]:
    """The CoNLL-2012 parse bit of each word of ``tree`` (``(TOP(S(NP*``, ``*)``, ...)."""
    bits: list[str] = []

    def walk(node: Tree) -> None:
        if is_preterminal(node):
            bits.append("*")
            return
        start = len(bits)
        for child in node:
            if not isinstance(child, Tree):
                raise ValueError(f"bare word {child!r} under {node.label()!r}: not a (TAG word) leaf")
            walk(child)
        if len(bits) == start or not node.label() or _BAD_BRACKET_LABEL.search(node.label()):
            raise ValueError(f"constituent {node.label()!r} is empty or has a bad label")
        bits[start] = f"({node.label()}{bits[start]}"
        bits[-1] += ")"  # after the line above: a one-word constituent opens and closes on one bit

    walk(tree)
    return bits


def sorted_frames(frames: Frames, n: int, *, add_verb: bool) -> Frames:
    """Frames sorted by predicate with sorted arguments; ``(p, p, V)`` added where a frame has no V."""
    out: Frames = []
    for p, args in sorted(frames, key=lambda fr: fr[0]):
        args = sorted((int(s), int(e), str(r)) for s, e, r in args)
        if not 0 <= p < n or (out and out[-1][0] == p):
            raise ValueError(f"predicate {p} is out of range for {n} words or repeated")
        if add_verb and all(r != "V" for *_, r in args):
            args = sorted([*args, (int(p), int(p), "V")])
        out.append((int(p), args))
    return out


# --------------------------------------------------------------------------------------- CoNLL 2018


def conll2018_attachment(
    preds: Iterable[tuple[Sequence[int], Sequence[str]]], gold: Iterable[Sentence]
) -> dict:
    """UAS and LAS as the CoNLL 2018 UD shared task's ``conll18_ud_eval.py`` computes them.

    With gold tokenization (the only case here: words align one to one) the script's precision, recall
    and F1 are all equal to an accuracy over words. Mapping to :class:`~mtlheads.tasks.dep.DepMetric`:

    ==========================  ===========================================  =============================
    convention                  CoNLL 2018 (this function)                   DepMetric (model selection)
    ==========================  ===========================================  =============================
    words scored                all, punctuation included                    those not :func:`is_punct`
    DEPREL compared             universal part only (``nmod:poss`` = nmod)   whole string
    UAS                         HEAD equal                                   HEAD equal
    LAS                         HEAD equal and universal DEPREL equal        HEAD and full DEPREL equal
    ==========================  ===========================================  =============================

    The official script also refuses a file whose sentence has several roots or a cycle; ``DepTask.decode``
    with ``final=True`` only outputs single-rooted trees, which it accepts.

    Args:
        preds: Per sentence ``(heads, rels)`` as ``DepTask.decode`` returns them.
        gold: The sentences with ``heads`` and ``rels``.

    Returns:
        ``{"uas", "las"}`` as fractions (0.0 when there is no word).
    """
    total = arcs = labelled = 0
    for (heads, rels), sent in zip(preds, gold, strict=True):
        if not len(heads) == len(rels) == len(sent.heads or []) == len(sent.rels or []):
            raise ValueError(f"{sent.source}: prediction and gold lengths differ")
        for h, r, gh, gr in zip(heads, rels, sent.heads, sent.rels, strict=True):
            total += 1
            if h == gh:
                arcs += 1
                labelled += r.split(":")[0] == gr.split(":")[0]
    return {"uas": arcs / total if total else 0.0, "las": labelled / total if total else 0.0}
