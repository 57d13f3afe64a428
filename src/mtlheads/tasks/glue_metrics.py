"""GLUE metrics: accuracy, F1 (MRPC, QQP), Matthews correlation (CoLA), Pearson/Spearman (STS-B).

Classification metrics come from ``torchmetrics.functional``, correlations from ``scipy.stats``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional import accuracy, f1_score, matthews_corrcoef

from mtlheads.data.glue_reader import GLUE_TASKS, glue_task_name


def _indices(values: Sequence, labels: list[str], what: str) -> torch.Tensor:
    """Label strings (as in the TSV files) or integer indices into ``labels`` -> a long tensor."""
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in labels:
                raise ValueError(f"{what}: unknown label {v!r}; expected one of {labels}")
            out.append(labels.index(v))
        else:
            i = int(v)
            if i != v or not 0 <= i < len(labels):
                raise ValueError(f"{what}: {v!r} is not a label index in 0..{len(labels) - 1}")
            out.append(i)
    return torch.tensor(out, dtype=torch.long)


def _correlation(fn, preds: np.ndarray, golds: np.ndarray) -> float:
    """``fn(preds, golds)``'s coefficient; 0.0 where it is undefined (a constant input)."""
    if np.ptp(preds) == 0 or np.ptp(golds) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(preds, golds).statistic)
    return 0.0 if math.isnan(value) else value


def glue_metrics(task: str, preds: Sequence, golds: Sequence) -> dict[str, float]:
    """Scores of one GLUE task's predictions.

    Classification tasks: ``{"acc"}``, plus ``"f1"`` (positive class ``"1"``) for MRPC and QQP and
    ``"mcc"`` for CoLA. STS-B: ``{"pearson", "spearman", "corr"}`` with ``corr`` their mean. Accuracy and
    F1 are fractions in [0, 1]; correlations lie in [-1, 1]. A correlation that is undefined because the
    predictions or the gold scores are constant is reported as 0.0 (as torchmetrics does for MCC).

    Args:
        task: A GLUE task name (see :data:`mtlheads.data.glue_reader.GLUE_TASKS`).
        preds: Predicted labels, as label strings (``"entailment"``, ``"1"``) or indices into the task's
            label list; floats for STS-B.
        golds: Gold labels in the same form, same length.

    Returns:
        Metric name -> value (Python floats), in the order of ``GLUE_TASKS[task]["metrics"]``.

    Raises:
        ValueError: Different lengths, no examples, or a label outside the task's label set.
    """
    name = glue_task_name(task)
    spec = GLUE_TASKS[name]
    if len(preds) != len(golds):
        raise ValueError(f"{name}: {len(preds)} predictions for {len(golds)} gold labels")
    if len(golds) == 0:
        raise ValueError(f"{name}: no examples to score")
    if spec["labels"] is None:
        p, g = np.asarray(preds, dtype=np.float64), np.asarray(golds, dtype=np.float64)
        pearson, spearman = _correlation(stats.pearsonr, p, g), _correlation(stats.spearmanr, p, g)
        scores = {"pearson": pearson, "spearman": spearman, "corr": (pearson + spearman) / 2}
    else:
        labels = spec["labels"]
        p, g = _indices(preds, labels, "preds"), _indices(golds, labels, "golds")
        n = len(labels)
        scores = {"acc": float(accuracy(p, g, task="multiclass", num_classes=n, average="micro"))}
        if "f1" in spec["metrics"]:
            scores["f1"] = float(f1_score(p, g, task="binary"))
        if "mcc" in spec["metrics"]:
            scores["mcc"] = float(matthews_corrcoef(p, g, task="multiclass", num_classes=n))
    return {k: scores[k] for k in spec["metrics"]}
