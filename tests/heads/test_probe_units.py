"""The scored units of the five head probes, read from hand-made gold sentences."""

from __future__ import annotations

import pytest
import torch

from mtlheads.data.sentence import Sentence
from mtlheads.heads.probe_units import collect_units, lowest_phrases, sentence_units

TREE = "(TOP (S (NP-SBJ (DT the) (JJ big) (NN cat)) (VP (VBZ sees) (NP (PRP it)) (ADVP (RB now))) (. .)))"
WORDS = ["the", "big", "cat", "sees", "it", "now", "."]


def test_lowest_phrases_are_height_three_subtrees_without_function_tags():
    # VP has phrase children, S and TOP are higher: only the three phrases over pre-terminals count
    assert lowest_phrases(TREE) == [(0, 2, "NP"), (4, 4, "NP"), (5, 5, "ADVP")]
    # a wrapper directly over pre-terminals is not a phrase; a unary phrase over one word is
    assert lowest_phrases("(TOP (NN hi))") == []
    assert lowest_phrases("(TOP (INTJ (UH hi)))") == [(0, 0, "INTJ")]


def test_units_of_every_kind():
    sent = Sentence(
        words=WORDS,
        pos=["DT", "JJ", "NN", "VBZ", "PRP", "RB", "."],
        heads=[3, 3, 4, 0, 4, 4, 4],
        rels=["det", "amod", "nsubj", "root", "obj", "advmod", "punct"],
        entities=[(2, 2, "ANIMAL")],
        tree=TREE,
        srl=[(3, [(0, 2, "ARG0"), (3, 3, "V"), (4, 4, "ARG1"), (5, 5, "ARGM-TMP"), (5, 5, "ARGM-DIS")])],
    )
    assert sentence_units(sent, "pos")[:2] == [(0, 0, "DT"), (1, 1, "JJ")]
    assert sentence_units(sent, "ner") == [(2, 2, "ANIMAL")]
    assert sentence_units(sent, "con") == [(0, 2, "NP"), (4, 4, "NP"), (5, 5, "ADVP")]
    # DEP: ROOT-prefixed positions (word k at k + 1, ROOT at 0)
    dep = sentence_units(sent, "dep")
    assert dep[0] == (1, 3, "det") and dep[3] == (4, 0, "root") and len(dep) == 7
    # SRL: V removed, a repeated span keeps its first role (the SRL task's cleaning)
    assert sorted(sentence_units(sent, "srl")) == [
        (3, 0, 2, "ARG0"),
        (3, 4, 4, "ARG1"),
        (3, 5, 5, "ARGM-TMP"),
    ]


def test_labels_by_frequency_and_batch_rows():
    a = Sentence(words=["a", "b", "c"], pos=["X", "Y", "Y"])
    b = Sentence(words=["d"], pos=["Z"])
    units = collect_units([a, b], "pos")
    assert units.labels == ["Y", "X", "Z"] and units.counts.tolist() == [2, 1, 1]
    assert units.rows[0].tolist() == [[0, 0, 1], [1, 1, 0], [2, 2, 0]]
    # column 0 = position of the sentence in the batch
    assert units.batch([1, 0]).tolist() == [[0, 0, 0, 2], [1, 0, 0, 1], [1, 1, 1, 0], [1, 2, 2, 0]]
    assert units.batch([]).shape == (0, 4)
    empty = collect_units([Sentence(words=["x"], entities=[])], "ner")
    assert empty.labels == [] and empty.rows[0].shape == (0, 3) and empty.counts.dtype == torch.long


def test_missing_layers_and_bad_spans_raise():
    with pytest.raises(ValueError, match="no POS"):
        sentence_units(Sentence(words=["a"]), "pos")
    with pytest.raises(ValueError, match="leaves"):
        sentence_units(Sentence(words=["a"], tree="(TOP (NP (DT a) (NN b)))"), "con")
    with pytest.raises(ValueError, match="outside"):
        sentence_units(Sentence(words=["a"], entities=[(0, 1, "PER")]), "ner")
    with pytest.raises(ValueError, match="kind"):
        sentence_units(Sentence(words=["a"]), "lemma")
