"""GLUE metrics against values computed by hand from their formulas."""

from __future__ import annotations

import math

import pytest

from mtlheads.tasks.glue_metrics import glue_metrics

# A 2x2 confusion table with positive class 1: TP=3, FN=2, FP=1, TN=2 (8 examples).
GOLDS = [1, 1, 1, 1, 1, 0, 0, 0]
PREDS = [1, 1, 1, 0, 0, 1, 0, 0]
TP, FN, FP, TN = 3, 2, 1, 2


def test_cola_mcc_and_accuracy() -> None:
    mcc = (TP * TN - FP * FN) / math.sqrt((TP + FP) * (TP + FN) * (TN + FP) * (TN + FN))  # 4 / sqrt(240)
    scores = glue_metrics("CoLA", PREDS, GOLDS)
    assert list(scores) == ["mcc", "acc"]
    assert scores["mcc"] == pytest.approx(mcc) == pytest.approx(0.2581988897)
    assert scores["acc"] == pytest.approx((TP + TN) / 8)
    assert all(type(v) is float for v in scores.values())
    # label strings as written in the TSV give the same numbers
    assert glue_metrics("cola", [str(p) for p in PREDS], [str(g) for g in GOLDS]) == scores


@pytest.mark.parametrize("task", ["MRPC", "qqp"])
def test_f1_positive_class_one(task: str) -> None:
    precision, recall = TP / (TP + FP), TP / (TP + FN)
    f1 = 2 * precision * recall / (precision + recall)  # = 2TP / (2TP + FP + FN) = 6/9
    scores = glue_metrics(task, PREDS, GOLDS)
    assert scores == {"f1": pytest.approx(f1), "acc": pytest.approx(5 / 8)}
    assert f1 == pytest.approx(2 / 3)
    # swapping the classes changes F1 (positive class is "1"): TP=2, FP=2, FN=1 -> 4/7
    flipped = glue_metrics(task, [1 - p for p in PREDS], [1 - g for g in GOLDS])
    assert flipped["f1"] == pytest.approx(4 / 7) and flipped["acc"] == pytest.approx(5 / 8)
    assert glue_metrics(task, [0, 0], [1, 0])["f1"] == 0.0  # no positive prediction


def test_accuracy_tasks() -> None:
    golds = ["entailment", "not_entailment", "entailment", "not_entailment"]
    assert glue_metrics("RTE", ["entailment"] * 4, golds) == {"acc": 0.5}
    assert glue_metrics("qnli", [0, 1, 0, 1], golds) == {"acc": 1.0}
    assert glue_metrics("SST-2", [1, 1, 0], [1, 0, 0]) == {"acc": pytest.approx(2 / 3)}
    assert glue_metrics("wnli", ["0"], ["1"]) == {"acc": 0.0}
    nli = ["entailment", "neutral", "contradiction"]
    assert glue_metrics("mnli", [0, 1, 2, 2, 1], [nli[0], nli[1], nli[2], nli[1], nli[0]]) == {
        "acc": pytest.approx(0.6)
    }


def test_stsb_pearson_spearman() -> None:
    preds, golds = [1.0, 2.0, 3.0, 4.0], [1.0, 9.0, 4.0, 16.0]
    # Pearson by hand: dx = (-1.5, -.5, .5, 1.5), dy = (-6.5, 1.5, -3.5, 8.5); sum dx*dy = 20,
    # sum dx^2 = 5, sum dy^2 = 129 -> 20 / sqrt(645).
    pearson = 20 / math.sqrt(5 * 129)
    # Spearman: ranks (1, 2, 3, 4) vs (1, 3, 2, 4), rank differences d = (0, -1, 1, 0):
    # 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 12 / 60.
    spearman = 1 - 6 * 2 / (4 * 15)
    scores = glue_metrics("STS-B", preds, golds)
    assert list(scores) == ["pearson", "spearman", "corr"]
    assert scores["pearson"] == pytest.approx(pearson) == pytest.approx(0.7874992)
    assert scores["spearman"] == pytest.approx(spearman)
    assert scores["corr"] == pytest.approx((pearson + spearman) / 2)
    assert glue_metrics("stsb", [2.5, 2.5, 2.5], [1.0, 2.0, 5.0]) == {
        "pearson": 0.0,
        "spearman": 0.0,
        "corr": 0.0,
    }


def test_errors() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3"):
        glue_metrics("rte", [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="no examples"):
        glue_metrics("cola", [], [])
    with pytest.raises(ValueError, match="unknown label"):
        glue_metrics("rte", ["neutral"], ["entailment"])
    with pytest.raises(ValueError, match="not a label index"):
        glue_metrics("mrpc", [2], [1])
    with pytest.raises(KeyError):
        glue_metrics("squad", [0], [0])
