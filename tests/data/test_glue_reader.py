"""GLUE reader: every task's layout on hand-written TSVs, located errors, and the real GLUE files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlheads.data.glue_reader import GLUE_TASKS, GlueExample, glue_file, glue_task_name, read_glue
from mtlheads.data.sentence import DataFormatError


def write(tmp_path: Path, name: str, rows: list[list[str]], *, bom: bool = False, end: str = "\n") -> Path:
    path = tmp_path / name
    text = "\n".join("\t".join(r) for r in rows) + end
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def assert_error(path: Path, task: str, line: int | None, match: str = "") -> None:
    with pytest.raises(DataFormatError, match=match) as info:
        read_glue(path, task=task)
    assert info.value.line == line
    assert path.name in str(info.value)
    if line is not None:
        assert f"{path.name}:{line}:" in str(info.value)


# ----------------------------------------------------------------------------- layouts

COLA = [["gj04", "1", "", "The sailors rode."], ["gj04", "0", "*", 'He said "so.']]


def test_cola_train_no_header(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", COLA, end="")  # CoLA dev.tsv has no final newline
    ex = read_glue(path, task="CoLA")
    assert ex == [
        GlueExample("The sailors rode.", None, "1", f"{path}:1", "train-0"),
        GlueExample('He said "so.', None, "0", f"{path}:2", "train-1"),
    ]


def test_cola_test_header(tmp_path: Path) -> None:
    path = write(tmp_path, "test.tsv", [["index", "sentence"], ["0", "Bill whistled."], ["1", "A b."]])
    ex = read_glue(path, task="cola")
    assert [(e.text_a, e.label, e.guid, e.source) for e in ex] == [
        ("Bill whistled.", None, "0", f"{path}:2"),
        ("A b.", None, "1", f"{path}:3"),
    ]


def test_cola_errors(tmp_path: Path) -> None:
    assert_error(write(tmp_path, "a.tsv", [COLA[0], ["gj04", "1", "x"]]), "cola", 2, "expected 4")
    assert_error(write(tmp_path, "b.tsv", [COLA[0], COLA[1], ["gj04", "2", "", "x"]]), "cola", 3, "label '2'")


def test_sst2(tmp_path: Path) -> None:
    rows = [["sentence", "label"], ["it 's charming . ", "1"], ['a " stray quote', "0"]]
    ex = read_glue(write(tmp_path, "dev.tsv", rows), task="SST-2")
    assert [(e.text_a, e.text_b, e.label) for e in ex] == [
        ("it 's charming . ", None, "1"),
        ('a " stray quote', None, "0"),
    ]
    test = read_glue(write(tmp_path, "test.tsv", [["index", "sentence"], ["0", "uneasy ."]]), task="sst2")
    assert (test[0].text_a, test[0].label, test[0].guid) == ("uneasy .", None, "0")
    assert_error(write(tmp_path, "bad.tsv", [*rows, ["x", "1", "extra"]]), "sst2", 4, "expected 2")
    assert_error(write(tmp_path, "lab.tsv", [rows[0], ["x", "positive"]]), "sst2", 2, "unknown sst2 label")


MRPC_HEAD = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


def test_mrpc_bom_and_test(tmp_path: Path) -> None:
    rows = [MRPC_HEAD, ["1", "702876", "702977", 'He called " the witness " .', '" Referring to him .']]
    ex = read_glue(write(tmp_path, "train.tsv", rows, bom=True), task="MRPC")
    assert (ex[0].text_a, ex[0].text_b, ex[0].label) == (
        'He called " the witness " .',
        '" Referring to him .',
        "1",
    )
    head = ["index", *MRPC_HEAD[1:]]
    test = read_glue(write(tmp_path, "test.tsv", [head, ["0", "1", "2", "A .", "B ."]]), task="mrpc")
    assert (test[0].text_a, test[0].text_b, test[0].label, test[0].guid) == ("A .", "B .", None, "0")
    assert_error(write(tmp_path, "bad.tsv", [*rows, ["0", "1", "2", "A ."]], bom=True), "mrpc", 3, "found 4")


@pytest.mark.parametrize(
    ("task", "a", "b", "labels"),
    [
        ("RTE", "sentence1", "sentence2", ["entailment", "not_entailment"]),
        ("WNLI", "sentence1", "sentence2", ["0", "1"]),
        ("QNLI", "question", "sentence", ["entailment", "not_entailment"]),
    ],
)
def test_pair_tasks(tmp_path: Path, task: str, a: str, b: str, labels: list[str]) -> None:
    rows = [
        ["index", a, b, "label"],
        ["0", "P one.", "H one.", labels[0]],
        ["1", "P two.", "H two.", labels[1]],
    ]
    ex = read_glue(write(tmp_path, "dev.tsv", rows), task=task)
    assert [(e.text_a, e.text_b, e.label, e.guid) for e in ex] == [
        ("P one.", "H one.", labels[0], "0"),
        ("P two.", "H two.", labels[1], "1"),
    ]
    test = read_glue(write(tmp_path, "test.tsv", [r[:3] for r in rows]), task=task)
    assert [e.label for e in test] == [None, None]
    assert_error(write(tmp_path, "bad.tsv", [*rows, ["2", "P.", "H.", labels[0], ""]]), task, 4, "found 5")
    assert_error(write(tmp_path, "lab.tsv", [*rows, ["2", "P.", "H.", "neutral"]]), task, 4, "unknown")


STSB_HEAD = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
]


def stsb_row(i: int, score: str | None) -> list[str]:
    row = [
        str(i),
        "main-captions",
        "MSRvid",
        "2012test",
        "0001",
        "none",
        "none",
        f"A plane {i}.",
        f"A jet {i}.",
    ]
    return row if score is None else [*row, score]


def test_stsb(tmp_path: Path) -> None:
    rows = [[*STSB_HEAD, "score"], stsb_row(0, "5.000"), stsb_row(1, "3.800"), stsb_row(2, "0")]
    ex = read_glue(write(tmp_path, "train.tsv", rows), task="STS-B")
    assert [e.label for e in ex] == [5.0, 3.8, 0.0] and all(isinstance(e.label, float) for e in ex)
    assert (ex[1].text_a, ex[1].text_b, ex[1].guid) == ("A plane 1.", "A jet 1.", "1")
    test = read_glue(write(tmp_path, "test.tsv", [STSB_HEAD, stsb_row(0, None)]), task="stsb")
    assert test[0].label is None and test[0].text_b == "A jet 0."
    assert_error(write(tmp_path, "nan.tsv", [*rows, stsb_row(3, "high")]), "stsb", 5, "not a number")
    assert_error(write(tmp_path, "big.tsv", [*rows, stsb_row(3, "7.5")]), "stsb", 5, "outside")
    assert_error(write(tmp_path, "short.tsv", [rows[0], stsb_row(0, None)]), "stsb", 2, "expected 10")


MNLI_HEAD = [
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
]  # fmt: skip


def mnli_row(i: int, *labels: str) -> list[str]:
    return [
        str(i),
        "31193",
        f"{i}n",
        "fiction",
        "( ( A ) )",
        "( B )",
        "(ROOT A)",
        "(ROOT B)",
        f"P {i}",
        f"H {i}",
        *labels,
    ]


def test_mnli_columns_by_name(tmp_path: Path) -> None:
    train = [
        [*MNLI_HEAD, "label1", "gold_label"],
        mnli_row(0, "neutral", "neutral"),
        mnli_row(1, "x", "contradiction"),
    ]
    ex = read_glue(write(tmp_path, "train.tsv", train), task="mnli")
    assert [(e.text_a, e.text_b, e.label) for e in ex] == [
        ("P 0", "H 0", "neutral"),
        ("P 1", "H 1", "contradiction"),
    ]
    dev_head = [*MNLI_HEAD, "label1", "label2", "label3", "label4", "label5", "gold_label"]
    dev = [
        dev_head,
        mnli_row(0, "neutral", "entailment", "entailment", "neutral", "entailment", "entailment"),
    ]
    assert read_glue(write(tmp_path, "dev_matched.tsv", dev), task="MNLI")[0].label == "entailment"
    test = read_glue(write(tmp_path, "test_matched.tsv", [MNLI_HEAD, mnli_row(0)]), task="mnli")
    assert (test[0].text_a, test[0].label) == ("P 0", None)
    assert_error(write(tmp_path, "bad.tsv", [*train, mnli_row(2, "neutral", "-")]), "mnli", 4, "unknown mnli")


def test_qqp(tmp_path: Path) -> None:
    rows = [
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        ["7", "1", "2", "How?", "Why?", "0"],
    ]
    ex = read_glue(write(tmp_path, "train.tsv", rows), task="QQP")
    assert (ex[0].text_a, ex[0].text_b, ex[0].label, ex[0].guid) == ("How?", "Why?", "0", "7")
    test = read_glue(
        write(tmp_path, "test.tsv", [["id", "question1", "question2"], ["0", "A?", "B?"]]), task="qqp"
    )
    assert (test[0].text_a, test[0].text_b, test[0].label) == ("A?", "B?", None)
    assert_error(write(tmp_path, "bad.tsv", [*rows, ["8", "3", "4", "When?"]]), "qqp", 3, "expected 6")


# ----------------------------------------------------------------------------- file-level errors


def test_file_errors(tmp_path: Path) -> None:
    assert_error(tmp_path / "missing.tsv", "rte", None, "file not found")
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    assert_error(tmp_path / "empty.tsv", "rte", None, "empty file")
    assert_error(
        write(tmp_path, "head.tsv", [["index", "premise", "hypothesis", "label"]]), "rte", 1, "lacks"
    )
    rows = [["sentence", "label"], ["a", "1"], [""], ["b", "0"]]
    assert_error(write(tmp_path, "blank.tsv", rows), "sst2", 3, "blank line")
    (tmp_path / "bin.tsv").write_bytes(b"sentence\tlabel\n\xff\xfe\t1\n")
    assert_error(tmp_path / "bin.tsv", "sst2", 2, "not UTF-8: byte 0xff at column 1")  # line, not offset


def test_trailing_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_bytes(b"sentence\tlabel\r\na b\t1\r\n\r\n\n")
    assert [(e.text_a, e.label) for e in read_glue(path, task="sst2")] == [("a b", "1")]


def test_task_names_and_files(tmp_path: Path) -> None:
    assert [glue_task_name(t) for t in ("SST-2", "sts_b", "CoLA", "mnli")] == ["sst2", "stsb", "cola", "mnli"]
    with pytest.raises(KeyError):
        glue_task_name("squad")
    assert glue_file(tmp_path, "STS-B", "dev") == tmp_path / "STS-B" / "dev.tsv"
    assert glue_file(tmp_path, "mnli", "dev_mismatched") == tmp_path / "MNLI" / "dev_mismatched.tsv"
    with pytest.raises(KeyError):
        glue_file(tmp_path, "rte", "dev_matched")
    assert GLUE_TASKS["stsb"]["labels"] is None and GLUE_TASKS["stsb"]["num_labels"] == 1
    assert GLUE_TASKS["mnli"]["labels"] == ["entailment", "neutral", "contradiction"]
    assert GLUE_TASKS["cola"]["main_metric"] == "mcc" and GLUE_TASKS["mrpc"]["metrics"] == ["f1", "acc"]
    assert all(t["num_labels"] == len(t["labels"]) for t in GLUE_TASKS.values() if t["labels"])


# ----------------------------------------------------------------------------- the real files

REAL = [  # (task, split, rows in the GLUE release: shared/data/glue/README.md)
    ("cola", "train", 8551), ("cola", "dev", 1043), ("cola", "test", 1063),
    ("sst2", "train", 67349), ("sst2", "dev", 872), ("sst2", "test", 1821),
    ("mrpc", "train", 3668), ("mrpc", "dev", 408), ("mrpc", "test", 1725),
    ("rte", "train", 2490), ("rte", "dev", 277), ("rte", "test", 3000),
    ("stsb", "train", 5749), ("stsb", "dev", 1500), ("stsb", "test", 1379),
    ("wnli", "train", 635), ("wnli", "dev", 71), ("wnli", "test", 146),
    ("qnli", "dev", 5463), ("qnli", "test", 5463),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("task", "split", "count"), REAL)
def test_real_glue(data_root: Path, task: str, split: str, count: int) -> None:
    path = glue_file(data_root / "glue", task, split)
    if not path.is_file():
        pytest.skip(f"{path} not present")
    text = path.read_text(encoding="utf-8-sig")
    lines = text.count("\n") + (not text.endswith("\n"))
    header = 0 if (task, split) in {("cola", "train"), ("cola", "dev")} else 1
    ex = read_glue(path, task=task)
    assert len(ex) == lines - header == count
    if split == "test":
        assert all(e.label is None for e in ex)
    elif task == "stsb":
        assert all(isinstance(e.label, float) and 0 <= e.label <= 5 for e in ex)
    else:
        assert {e.label for e in ex} == set(GLUE_TASKS[task]["labels"])
    assert all(e.text_a for e in ex) and all((e.text_b is None) == (task in {"cola", "sst2"}) for e in ex)
