"""EVALB-style bracket scoring: deleted punctuation shifts spans, unary chains, duplicates, ADVP=PRT."""

from __future__ import annotations

from collections import Counter

import pytest

from mtlheads.data.sentence import Sentence
from mtlheads.tasks.evalb import EvalbMetric, brackets

CAT = "(TOP (S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .)))"


def _sent(tree: str) -> Sentence:
    from nltk import Tree

    pos = Tree.fromstring(tree).pos()
    return Sentence(words=[w for w, _ in pos], pos=[t for _, t in pos], tree=tree)


def _score(pred: str, gold: str) -> dict[str, float]:
    metric = EvalbMetric()
    metric.update([pred], [_sent(gold)])
    return metric.compute()


def test_brackets_delete_punctuation_and_top_but_count_the_root() -> None:
    # "." is deleted with its word; TOP is not counted, S (the root constituent) is: 6 words remain
    assert brackets(CAT) == Counter(
        {(0, 6, "S"): 1, (0, 2, "NP"): 1, (2, 6, "VP"): 1, (3, 6, "PP"): 1, (4, 6, "NP"): 1}
    )
    # leading quote removed: every later span shifts left by one
    assert brackets("(TOP (S (`` ``) (NP (PRP I)) (VP (VBP go) (, ,) (ADVP (RB now))) ('' '')))") == Counter(
        {(0, 3, "S"): 1, (0, 1, "NP"): 1, (1, 3, "VP"): 1, (2, 3, "ADVP"): 1}
    )
    # a bracket over punctuation only disappears; -NONE- is removed like punctuation
    assert brackets("(TOP (S (NP (-NONE- *)) (VP (VB go)) (X (: :))))") == Counter(
        {(0, 1, "S"): 1, (0, 1, "VP"): 1}
    )


def test_unary_chains_duplicates_function_tags_and_prt() -> None:
    assert brackets("(TOP (S (VP (VB Go))))") == Counter({(0, 1, "S"): 1, (0, 1, "VP"): 1})
    assert brackets("(TOP (NP (NP (NN x))))") == Counter({(0, 1, "NP"): 2})
    assert brackets("(TOP (S-TPC (NP-SBJ=1 (NN x)) (VP (VBD gave) (PRT (RP up)))))") == Counter(
        {(0, 3, "S"): 1, (0, 1, "NP"): 1, (1, 3, "VP"): 1, (2, 3, "ADVP"): 1}
    )
    assert brackets("(TOP (X (. ?)) (Y (. !)))") == Counter()


def test_identical_and_punctuation_attachment_are_perfect() -> None:
    assert _score(CAT, CAT) == {"p": 1.0, "r": 1.0, "f1": 1.0}
    # attaching the final period inside VP changes nothing once it is deleted
    moved = "(TOP (S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat))) (. .))))"
    assert _score(moved, CAT)["f1"] == 1.0


def test_hand_computed_precision_recall() -> None:
    # gold: S NP VP PP NP (5); pred: FRAG NP PP NP (4), 3 matched
    pred = "(TOP (FRAG (NP (DT The) (NN cat)) (VBD sat) (PP (IN on) (NP (DT the) (NN mat))) (. .)))"
    s = _score(pred, CAT)
    assert s["p"] == pytest.approx(3 / 4) and s["r"] == pytest.approx(3 / 5)
    assert s["f1"] == pytest.approx(2 * 3 / 9)


def test_unary_and_duplicate_counting_in_scores() -> None:
    # gold has S and VP over the same span, pred only VP: P = 1/1, R = 1/2
    assert _score("(TOP (VP (VB Go) (. !)))", "(TOP (S (VP (VB Go) (. !))))") == pytest.approx(
        {"p": 1.0, "r": 0.5, "f1": 2 / 3}
    )
    # gold NP NP (duplicate) vs pred NP: one match; pred NP NP NP vs gold NP NP: two matches out of three
    assert _score("(TOP (NP (NN x)))", "(TOP (NP (NP (NN x))))") == pytest.approx(
        {"p": 1.0, "r": 0.5, "f1": 2 / 3}
    )
    assert _score("(TOP (NP (NP (NP (NN x)))))", "(TOP (NP (NP (NN x))))") == pytest.approx(
        {"p": 2 / 3, "r": 1.0, "f1": 0.8}
    )


def test_advp_prt_equivalent_and_micro_average() -> None:
    metric = EvalbMetric()
    gold = [_sent("(TOP (S (NP (PRP I)) (VP (VBD gave) (PRT (RP up)))))"), _sent(CAT)]
    preds = [
        "(TOP (S (NP (PRP I)) (VP (VBD gave) (ADVP (RB up)))))",  # ADVP = PRT; the wrong POS is overwritten
        "(TOP (S (NP (DT The) (NN cat) (VBD sat)) (PP (IN on) (NP (DT the) (NN mat))) (. .)))",  # 3 of 4 / 5
    ]
    metric.update(preds, gold)
    matched, n_pred, n_gold = 4 + 3, 4 + 4, 4 + 5
    assert metric.compute() == pytest.approx(
        {"p": matched / n_pred, "r": matched / n_gold, "f1": 2 * matched / (n_pred + n_gold)}
    )


def test_gold_tags_are_copied_into_the_prediction() -> None:
    # the prediction tags the final "." as NN: with gold tags copied it is deleted on both sides
    pred = "(TOP (S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (NN .)))"
    assert _score(pred, CAT)["f1"] == 1.0
    metric = EvalbMetric(copy_gold_tags=False)
    metric.update([pred], [_sent(CAT)])
    assert metric.compute()["f1"] < 1.0


def test_span_predictions_use_gold_words_and_tags() -> None:
    spans = [
        (0, 4, "S"),
        (0, 3, "S|<>"),
        (0, 1, "NP"),
        (1, 3, "VP"),
        (1, 2, "VP|<>"),
        (2, 3, "NP"),
        (3, 4, "S|<>"),
    ]
    gold = _sent("(TOP (S (NP (PRP She)) (VP (VBZ reads) (NP (NNS books))) (. .)))")
    metric = EvalbMetric()
    metric.update([spans], [gold])
    assert metric.compute()["f1"] == 1.0


def test_errors() -> None:
    metric = EvalbMetric()
    with pytest.raises(ValueError, match="predictions"):
        metric.update([], [_sent(CAT)])
    with pytest.raises(ValueError, match="predicted words"):
        metric.update(["(TOP (NN x))"], [_sent(CAT)])
    assert EvalbMetric().compute() == {"p": 0.0, "r": 0.0, "f1": 0.0}
