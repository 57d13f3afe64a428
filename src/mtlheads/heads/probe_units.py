"""The scored units of each parameter-free head probe, read from gold sentences (reference §7).

* ``pos``: every token, labelled with its XPOS tag (``Sentence.pos``).
* ``ner``: every gold entity span, labelled with its type (``Sentence.entities``; no ``O`` class).
* ``con``: every lowest-level phrase, i.e. a subtree of height 3 whose children are all pre-terminals,
  labelled with its phrase label (function tags stripped as in our CON task, ``NP-SBJ`` → ``NP``; the
  ``TOP`` wrapper is never a unit).
* ``dep``: every gold arc, dependent → head, labelled with its relation; ``root`` arcs point to ROOT.
* ``srl``: every gold ``(predicate, argument span, role)``, after the SRL task's own cleaning
  (:func:`~mtlheads.tasks.srl_metric.clean_srl`: ``V``/``C-V`` removed, duplicate spans dropped).

Units are integer rows, so a batch's units are one tensor (the statistics never loop over units in Python):

=========  ==========================  =========================================================
kind       row                          indices
=========  ==========================  =========================================================
value      ``(start, end, label)``      0-based inclusive word span (``pos``: ``start == end``)
``dep``    ``(dep, head, label)``       ROOT-prefixed word positions: word k is k + 1, ROOT ([CLS]) is 0
``srl``    ``(pred, start, end, label)`` 0-based words
=========  ==========================  =========================================================

Labels are numbered by decreasing frequency in the probed set (ties: alphabetical), so label 0 is the
most frequent and "the top-k labels" are the first k.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from nltk import Tree
from torch import Tensor

from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import WRAPPERS, strip_label
from mtlheads.tasks.srl_metric import clean_srl

KINDS = ("pos", "ner", "con", "dep", "srl")
VALUE_KINDS = frozenset({"pos", "ner", "con"})  # scored on attended values (nearest centroid)
ATTENTION_KINDS = frozenset({"dep", "srl"})  # scored on attention argmax
ROW_WIDTH = {"pos": 3, "ner": 3, "con": 3, "dep": 3, "srl": 4}


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"probe kind must be one of {KINDS}, not {kind!r}")
    return kind


def lowest_phrases(tree: str | Tree) -> list[tuple[int, int, str]]:
    """Phrases whose children are all pre-terminals (nltk height 3), as word spans.

    Args:
        tree: a bracketed tree with ``(TAG word)`` leaves, e.g. ``Sentence.tree``.

    Returns:
        ``(start, end, label)`` inclusive 0-based word spans in pre-order, labels without function tags.
    """
    tree = tree if isinstance(tree, Tree) else Tree.fromstring(tree)
    spans: list[tuple[int, int, str]] = []

    def walk(node: Tree, i: int) -> int:
        if not isinstance(node, Tree):
            return i + 1
        if node.height() == 2:  # pre-terminal
            return i + 1
        j = i
        for child in node:
            j = walk(child, j)
        if node.height() == 3 and node.label() not in WRAPPERS:
            spans.append((i, j - 1, strip_label(node.label())))
        return j

    walk(tree, 0)
    return sorted(spans)


def sentence_units(sentence: Sentence, kind: str) -> list[tuple]:
    """One sentence's units of ``kind`` with string labels (rows as in the module doc)."""
    n, where = len(sentence.words), sentence.source or "sentence"
    if check_kind(kind) == "pos":
        if sentence.pos is None:
            raise ValueError(f"{where}: no POS layer")
        return [(i, i, tag) for i, tag in enumerate(sentence.pos)]
    if kind == "ner":
        if sentence.entities is None:
            raise ValueError(f"{where}: no NER layer")
        units = [(s, e, t) for s, e, t in sentence.entities]
    elif kind == "con":
        if sentence.tree is None:
            raise ValueError(f"{where}: no constituency tree")
        tree = Tree.fromstring(sentence.tree)
        if len(tree.leaves()) != n:
            raise ValueError(f"{where}: tree has {len(tree.leaves())} leaves for {n} words")
        units = lowest_phrases(tree)
    elif kind == "dep":
        if sentence.heads is None or sentence.rels is None:
            raise ValueError(f"{where}: no dependency layer")
        units = [(k + 1, h, r) for k, (h, r) in enumerate(zip(sentence.heads, sentence.rels, strict=True))]
        if any(not 0 <= h <= n for _, h, _ in units):
            raise ValueError(f"{where}: a head outside 0..{n}")
        return units
    else:
        units = [(p, s, e, r) for p, args in clean_srl(sentence.srl) for s, e, r in args]
        if any(not 0 <= p < n for p, *_ in units):
            raise ValueError(f"{where}: a predicate outside the sentence")
    if any(not 0 <= u[-3] <= u[-2] < n for u in units):
        raise ValueError(f"{where}: a {kind} span outside 0..{n - 1}")
    return units


@dataclass
class ProbeUnits:
    """All units of one probe over a list of sentences.

    Attributes:
        kind: one of :data:`KINDS`.
        labels: label names, most frequent first.
        counts: (C,) long, units per label.
        rows: per sentence, a (U_s, ROW_WIDTH[kind]) long tensor whose last column is the label index.
    """

    kind: str
    labels: list[str]
    counts: Tensor
    rows: list[Tensor]

    def batch(self, sentence_ids: list[int]) -> Tensor:
        """(U, 1 + width) long: the units of the given sentences, column 0 = position in ``sentence_ids``."""
        parts = [
            torch.cat([torch.full((len(self.rows[s]), 1), b, dtype=torch.long), self.rows[s]], dim=1)
            for b, s in enumerate(sentence_ids)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, 1 + ROW_WIDTH[self.kind], dtype=torch.long)


def collect_units(sentences: list[Sentence], kind: str) -> ProbeUnits:
    """Units of ``kind`` for every sentence, labels numbered by decreasing frequency.

    Raises:
        ValueError: a sentence lacks the layer, or a unit lies outside its sentence.
    """
    raw = [sentence_units(s, kind) for s in sentences]
    freq = Counter(u[-1] for units in raw for u in units)
    labels = sorted(freq, key=lambda lab: (-freq[lab], lab))
    index = {lab: i for i, lab in enumerate(labels)}
    width = ROW_WIDTH[kind]
    rows = [
        torch.tensor([(*u[:-1], index[u[-1]]) for u in units], dtype=torch.long).view(-1, width)
        for units in raw
    ]
    counts = torch.tensor([freq[lab] for lab in labels], dtype=torch.long)
    return ProbeUnits(kind=kind, labels=labels, counts=counts, rows=rows)
