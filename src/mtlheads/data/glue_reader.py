"""GLUE reader: each task's TSV files as distributed by the GLUE benchmark (``<TASK>/{train,dev,test}.tsv``).

Columns are located by header name; only CoLA's train/dev files have no header (``source``, ``label``,
``original-label-mark``, ``sentence``). Test files carry no label column: their examples have ``label=None``.
Fields are split on tabs with ``csv.QUOTE_NONE``: GLUE sentences contain stray ``"`` characters.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from mtlheads.data.conllu_reader import read_text
from mtlheads.data.sentence import DataFormatError

_STD_SPLITS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
_MNLI_SPLITS = {
    "train": "train.tsv",
    "dev_matched": "dev_matched.tsv",
    "dev_mismatched": "dev_mismatched.tsv",
    "test_matched": "test_matched.tsv",
    "test_mismatched": "test_mismatched.tsv",
}
_BINARY = ["0", "1"]
_NLI2 = ["entailment", "not_entailment"]


def _task(
    folder: str,
    labels: list[str] | None,
    metrics: list[str],
    main: str,
    columns: tuple,
    files: dict | None = None,
) -> dict:
    text_a, text_b, label, guid = columns
    return {
        "dir": folder,
        "type": "classification" if labels else "regression",
        "labels": labels,
        "num_labels": len(labels) if labels else 1,
        "files": dict(files or _STD_SPLITS),
        "metrics": metrics,
        "main_metric": main,
        "columns": {"text_a": text_a, "text_b": text_b, "label": label, "guid": guid},
    }


#: Per task (lower-case GLUE/HF name): folder name, label list (None = regression, 1 output), files per split,
#: metric keys returned by :func:`mtlheads.tasks.glue_metrics.glue_metrics` and the one reported as main
#: (F1 for MRPC/QQP, MCC for CoLA, mean of Pearson and Spearman for STS-B, accuracy otherwise), and the
#: header names of the text/label/id columns.
GLUE_TASKS: dict[str, dict] = {
    "cola": _task("CoLA", _BINARY, ["mcc", "acc"], "mcc", ("sentence", None, "label", "index")),
    "sst2": _task("SST-2", _BINARY, ["acc"], "acc", ("sentence", None, "label", "index")),
    "mrpc": _task("MRPC", _BINARY, ["f1", "acc"], "f1", ("#1 String", "#2 String", "Quality", "index")),
    "stsb": _task(
        "STS-B", None, ["pearson", "spearman", "corr"], "corr", ("sentence1", "sentence2", "score", "index")
    ),
    "qqp": _task("QQP", _BINARY, ["f1", "acc"], "f1", ("question1", "question2", "is_duplicate", "id")),
    "mnli": _task(
        "MNLI",
        ["entailment", "neutral", "contradiction"],
        ["acc"],
        "acc",
        ("sentence1", "sentence2", "gold_label", "index"),
        _MNLI_SPLITS,
    ),
    "qnli": _task("QNLI", _NLI2, ["acc"], "acc", ("question", "sentence", "label", "index")),
    "rte": _task("RTE", _NLI2, ["acc"], "acc", ("sentence1", "sentence2", "label", "index")),
    "wnli": _task("WNLI", _BINARY, ["acc"], "acc", ("sentence1", "sentence2", "label", "index")),
}

# CoLA train/dev have no header; these names stand in for it.
_COLA_COLUMNS = ["source", "label", "original-label-mark", "sentence"]
STSB_RANGE = (0.0, 5.0)


@dataclass
class GlueExample:
    """One GLUE example: a sentence or sentence pair and its label.

    ``label`` is the label string as written in the file for classification tasks (e.g. ``"1"``,
    ``"entailment"``), a float for STS-B, and None for unlabelled (test) files.
    """

    text_a: str
    text_b: str | None
    label: str | float | None
    source: str = ""  # "path:line"
    guid: str = ""  # the file's index/id column, else "<file stem>-<0-based row>"


def glue_task_name(task: str) -> str:
    """Canonical key of :data:`GLUE_TASKS` for a task name such as ``"SST-2"``, ``"sts_b"`` or ``"CoLA"``.

    Raises:
        KeyError: Not a GLUE task.
    """
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise KeyError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}")
    return key


def glue_file(glue_dir: str | Path, task: str, split: str) -> Path:
    """Path of a task's split file, e.g. ``glue_file(root / "glue", "MNLI", "dev_matched")``."""
    spec = GLUE_TASKS[glue_task_name(task)]
    if split not in spec["files"]:
        raise KeyError(f"task {task!r} has no split {split!r}; it has {', '.join(spec['files'])}")
    return Path(glue_dir) / spec["dir"] / spec["files"][split]


def _read_rows(path: str) -> list[tuple[int, list[str]]]:
    """(1-based line, fields) for every line; blank lines are allowed only at the end of the file."""
    rows: list[tuple[int, list[str]]] = []
    blank: int | None = None
    # read_text: missing file, directory and non-UTF-8 bytes are errors with file (and line). A leading BOM
    # (MRPC train/dev start with one) is dropped; newline="" lets csv see the file's own line ends.
    reader = csv.reader(io.StringIO(read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        for fields in reader:
            if not fields or fields == [""]:
                blank = blank or reader.line_num
                continue
            if blank is not None:
                raise DataFormatError(path, blank, "blank line inside the file")
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise DataFormatError(path, reader.line_num, f"cannot split into fields: {e}") from None
    return rows


def _label(path: str, line: int, value: str, task: str, labels: list[str] | None) -> str | float:
    if labels is not None:
        if value not in labels:
            raise DataFormatError(path, line, f"unknown {task} label {value!r}; expected one of {labels}")
        return value
    try:
        score = float(value)
    except ValueError:
        raise DataFormatError(path, line, f"{task} score {value!r} is not a number") from None
    low, high = STSB_RANGE
    if not (math.isfinite(score) and low <= score <= high):
        raise DataFormatError(path, line, f"{task} score {value!r} outside [{low:g}, {high:g}]")
    return score


def read_glue(path: str | Path, *, task: str) -> list[GlueExample]:
    """Read one GLUE TSV file in its task's own layout.

    Args:
        path: The ``.tsv`` file (train, dev or test, in the layout GLUE distributes).
        task: A GLUE task name (see :data:`GLUE_TASKS`; ``"SST-2"``, ``"sst2"`` etc. all work).

    Returns:
        One :class:`GlueExample` per data row, in file order; ``label`` is None when the file has no
        label column (the official test files).

    Raises:
        DataFormatError: Missing or non-UTF-8 file, empty or header-only file, a header lacking the task's
            text columns, a row whose number of fields differs from the header's, a blank line before the
            last row, an unknown label (classification) or a score that is not a number in [0, 5] (STS-B).
        KeyError: ``task`` is not a GLUE task.
    """
    name = glue_task_name(task)
    spec, path = GLUE_TASKS[name], str(path)
    cols = spec["columns"]
    rows = _read_rows(path)
    if not rows:
        raise DataFormatError(path, None, "empty file")
    if name == "cola" and cols["text_a"] not in rows[0][1]:
        header, data = _COLA_COLUMNS, rows  # CoLA train/dev: no header line
    else:
        header, data = [h.strip() for h in rows[0][1]], rows[1:]
        missing = [c for c in (cols["text_a"], cols["text_b"]) if c is not None and c not in header]
        if missing:
            raise DataFormatError(
                path, rows[0][0], f"{name} header lacks column(s) {missing}; header is {header}"
            )
    if not data:  # a header and no rows: a run would train or evaluate on nothing
        raise DataFormatError(path, rows[0][0], f"{name} file with a header line only, no examples")
    where = {c: header.index(c) for c in cols.values() if c is not None and c in header}
    labelled = cols["label"] in where
    stem = Path(path).stem
    examples: list[GlueExample] = []
    for row_no, (line, fields) in enumerate(data):
        if len(fields) != len(header):
            raise DataFormatError(
                path, line, f"expected {len(header)} tab-separated fields ({name}), found {len(fields)}"
            )
        label = None
        if labelled:
            label = _label(path, line, fields[where[cols["label"]]], name, spec["labels"])
        examples.append(
            GlueExample(
                text_a=fields[where[cols["text_a"]]],
                text_b=fields[where[cols["text_b"]]] if cols["text_b"] else None,
                label=label,
                source=f"{path}:{line}",
                guid=fields[where[cols["guid"]]] if cols["guid"] in where else f"{stem}-{row_no}",
            )
        )
    return examples
