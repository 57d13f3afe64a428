"""GLUE submissions: writing a task's predictions as the GLUE server expects them, and reading them back.

* **Files**: ``<TASK>.tsv`` named as the GLUE server expects (``MNLI-m.tsv`` / ``MNLI-mm.tsv``),
  :func:`glue_prediction_name`; header ``index<TAB>prediction``, labels as GLUE spells them (``0``/``1``,
  ``entailment``, ...), STS-B scores as floats (not clipped), :func:`format_glue_label`.
* :func:`write_glue`: GLUE submission TSV (atomic, as :mod:`mtlheads.data.writers`'s writers);
  :func:`read_glue_predictions` reads it back.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from mtlheads.data.glue_reader import GLUE_TASKS, GlueExample, glue_task_name
from mtlheads.data.sentence import DataFormatError
from mtlheads.utils.io import atomic_write


def glue_prediction_name(task: str, split: str = "test") -> str:
    """File name the GLUE server expects for a task's predictions: ``SST-2.tsv``, ``MNLI-m.tsv``, ...

    Args:
        task: A GLUE task name.
        split: For MNLI, a split name containing ``matched`` or ``mismatched`` (e.g. ``test_matched``).

    Raises:
        ValueError: MNLI without a matched/mismatched split.
    """
    name = glue_task_name(task)
    if name == "mnli":
        if "mismatched" in split:
            return "MNLI-mm.tsv"
        if "matched" in split:
            return "MNLI-m.tsv"
        raise ValueError(f"MNLI predictions need a matched or mismatched split, got {split!r}")
    return f"{GLUE_TASKS[name]['dir']}.tsv"


def format_glue_label(task: str, pred: object) -> str:
    """One prediction as GLUE writes it: a label string of the task, or a float for STS-B.

    Args:
        task: A GLUE task name.
        pred: A label string (as ``GlueTask.decode`` returns), a label index, or a number for STS-B.

    Raises:
        ValueError: A label outside the task's set, an index out of range, a non-finite score.
    """
    labels = GLUE_TASKS[glue_task_name(task)]["labels"]
    if labels is None:
        score = float(pred)  # type: ignore[arg-type]
        if not math.isfinite(score):
            raise ValueError(f"{task}: score {pred!r} is not finite")
        return repr(score)  # repr round-trips the float exactly
    if isinstance(pred, str) and pred in labels:
        return pred
    if isinstance(pred, int) and not isinstance(pred, bool) and 0 <= pred < len(labels):
        return labels[pred]
    raise ValueError(f"{task}: prediction {pred!r} is neither a label of {labels} nor an index into it")


def read_glue_predictions(path: str | Path, *, task: str) -> list[tuple[str, str | float]]:
    """``(index, prediction)`` rows of a GLUE prediction file (floats for STS-B).

    Raises:
        DataFormatError: Missing header, a row without 2 fields, a label outside the task's set.
    """
    path, labels = str(path), GLUE_TASKS[glue_task_name(task)]["labels"]
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != ["index", "prediction"]:
        raise DataFormatError(path, 1, "expected the header 'index<TAB>prediction'")
    out: list[tuple[str, str | float]] = []
    for no, row in enumerate(rows[1:], 2):
        if len(row) != 2 or (labels is not None and row[1] not in labels):
            raise DataFormatError(path, no, f"bad prediction row {row!r}")
        out.append((row[0], row[1] if labels is not None else float(row[1])))
    return out


def write_glue(path: str | Path, items: Iterable[tuple[GlueExample, Any]], *, task: str) -> Path:
    """A GLUE submission file: ``index<TAB>prediction`` rows under that header.

    ``index`` is the example's ``guid`` when it is a number (the test files' index column), else the row's
    0-based position. Name the file with :func:`glue_prediction_name`
    (MNLI matched and mismatched are two files).

    Raises:
        ValueError: A label outside the task's set, a non-finite STS-B score.
    """

    def write(f: IO) -> None:
        f.write("index\tprediction\n")
        for k, (example, pred) in enumerate(items):
            index = example.guid if example.guid.isdigit() else str(k)
            f.write(f"{index}\t{format_glue_label(task, pred)}\n")

    return atomic_write(path, write)
