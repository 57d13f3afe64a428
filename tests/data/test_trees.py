"""Tree preprocessing: function tags, binarisation, factorisation and the way back (hand cases + all EWT)."""

from __future__ import annotations

import pytest
from nltk import Tree

from mtlheads.data.trees import (
    binarize,
    build_tree,
    debinarize,
    factorize,
    gold_spans,
    spans_to_tree,
    strip_functions,
    strip_label,
    to_string,
)


def _roundtrip(tree: Tree) -> Tree:
    pos = tree.pos()
    spans = factorize(binarize(tree))
    return debinarize(build_tree(spans, [w for w, _ in pos], [t for _, t in pos]), tree.label())


def _is_full_binary(spans: list[tuple[int, int, str]], n: int) -> bool:
    """2n-1 distinct spans, all words covered by width-1 spans, root (0, n), every span split in two."""
    cover = {(i, j) for i, j, _ in spans}
    if len(cover) != len(spans) or len(spans) != 2 * n - 1 or (0, n) not in cover:
        return False
    return all(
        any((i, k) in cover and (k, j) in cover for k in range(i + 1, j)) for i, j in cover if j - i > 1
    )


def test_strip_label() -> None:
    assert [strip_label(x) for x in ["NP-SBJ-1", "NP=2", "S-TPC", "PRP$", "-NONE-", "-LRB-", "ADVP"]] == [
        "NP",
        "NP",
        "S",
        "PRP$",
        "-NONE-",
        "-LRB-",
        "ADVP",
    ]
    tree = strip_functions("(TOP (S (NP-SBJ (-NONE- *)) (VP (VB go) (-LRB- -LRB-))))")
    assert to_string(tree) == "(TOP (S (NP (-NONE- *)) (VP (VB go) (-LRB- -LRB-))))"


def test_binarize_and_factorize_hand_case() -> None:
    tree = Tree.fromstring("(TOP (S (NP (PRP She)) (VP (VBZ reads) (NP (NNS books))) (. .)))")
    b = binarize(tree)
    assert to_string(b) == "(S (S|<> (NP (PRP She)) (VP (VP|<> (VBZ reads)) (NP (NNS books)))) (S|<> (. .)))"
    assert factorize(b) == [
        (0, 4, "S"),
        (0, 3, "S|<>"),
        (0, 1, "NP"),
        (1, 3, "VP"),
        (1, 2, "VP|<>"),
        (2, 3, "NP"),
        (3, 4, "S|<>"),
    ]
    assert _roundtrip(tree) == tree
    assert (
        to_string(tree) == "(TOP (S (NP (PRP She)) (VP (VBZ reads) (NP (NNS books))) (. .)))"
    )  # input untouched


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("(TOP (S (VP (VB Go) (. !))))", [(0, 2, "S+VP"), (0, 1, "VP|<>"), (1, 2, "VP|<>")]),
        ("(TOP (NP (NNP Vince)))", [(0, 1, "NP")]),
        ("(TOP (S (NP (NP (NN x)))))", [(0, 1, "S+NP+NP")]),
        ("(TOP (NN Thanks))", [(0, 1, "TOP|<>")]),  # bare preterminal under TOP
        (  # several children under TOP (9 EWT trees)
            "(TOP (NP (NNP N.O.) (. ?)) (NP (NNP Atlanta)))",
            [(0, 3, "TOP|<>"), (0, 2, "NP"), (0, 1, "NP|<>"), (1, 2, "NP|<>"), (2, 3, "NP")],
        ),
        (  # left factoring of four children, no Markovisation
            "(TOP (NP (DT a) (JJ b) (NN c) (NN d)))",
            [
                (0, 4, "NP"),
                (0, 3, "NP|<>"),
                (0, 2, "NP|<>"),
                (0, 1, "NP|<>"),
                (1, 2, "NP|<>"),
                (2, 3, "NP|<>"),
                (3, 4, "NP|<>"),
            ],
        ),
        (  # unary chain above a binary node, and a unary over a preterminal inside
            "(TOP (S (VP (VBD ran) (ADVP (RB fast)) (PP (IN to) (NP (NNP X))))))",
            [
                (0, 4, "S+VP"),
                (0, 2, "VP|<>"),
                (0, 1, "VP|<>"),
                (1, 2, "ADVP"),
                (2, 4, "PP"),
                (2, 3, "PP|<>"),
                (3, 4, "NP"),
            ],
        ),
    ],
)
def test_hand_cases_roundtrip(text: str, spans: list) -> None:
    tree = Tree.fromstring(text)
    assert factorize(binarize(tree)) == spans
    assert gold_spans(text) == tuple(spans)
    assert _is_full_binary(spans, len(tree.leaves()))
    assert _roundtrip(tree) == tree


def test_function_tags_stripped_before_roundtrip() -> None:
    text = "(TOP (S (NP-SBJ-1 (PRP I)) (VP (VBP go) (ADVP-TMP (RB now))) (. .)))"
    stripped = strip_functions(text)
    assert (
        _roundtrip(stripped)
        == stripped
        == Tree.fromstring("(TOP (S (NP (PRP I)) (VP (VBP go) (ADVP (RB now))) (. .)))")
    )


def test_build_tree_escapes_leaves_and_orders_spans() -> None:
    spans = [(1, 2, "NP"), (0, 2, "S"), (0, 1, "S|<>")]  # any order
    tree = spans_to_tree(spans, ["(", "x"], ["-LRB-", "NN"])
    assert to_string(tree) == "(TOP (S (-LRB- -LRB-) (NP (NN x))))"
    assert to_string(build_tree([], ["a", "b"], ["DT", "NN"])) == "(|<> (DT a) (NN b))"
    assert to_string(spans_to_tree([], ["a", "b"], ["DT", "NN"])) == "(TOP (DT a) (NN b))"
    assert to_string(debinarize(build_tree([(0, 1, "A+B")], ["a"], ["DT"]), root=None)) == "(A (B (DT a)))"


def test_build_tree_rejects_bad_spans() -> None:
    with pytest.raises(ValueError, match="crosses"):
        build_tree([(0, 2, "A"), (1, 3, "B")], list("abc"), ["X"] * 3)
    with pytest.raises(ValueError, match="out of range"):
        build_tree([(0, 4, "A")], list("abc"), ["X"] * 3)
    with pytest.raises(ValueError, match="tags"):
        build_tree([], list("abc"), ["X"])


@pytest.mark.slow
def test_roundtrip_every_ewt_training_tree(data_root) -> None:
    from mtlheads.data.conll2012_reader import read_conll2012

    sentences = read_conll2012(data_root / "ewt" / "conll2012" / "train.gold_conll")
    assert len(sentences) > 10000
    for sent in sentences:
        tree = strip_functions(sent.tree)
        spans = factorize(binarize(tree))
        assert _is_full_binary(spans, len(sent.words)), sent.source
        back = debinarize(build_tree(spans, sent.words, sent.pos))  # words/tags from the Sentence
        assert back == tree, sent.source
