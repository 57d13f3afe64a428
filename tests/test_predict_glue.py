"""mode=predict for GLUE: leaderboard files from the unlabelled test sets, scores on labelled files.

The repository ships no GLUE data: tiny RTE, MNLI (both test sets) and STS-B files in GLUE's layout are
written here, with test indices that are not row numbers (the leaderboard matches rows by index).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, predict_cfg

from mtlheads.checkpoint import load_model
from mtlheads.data.glue_predictions import glue_prediction_name, read_glue_predictions
from mtlheads.data.glue_reader import read_glue
from mtlheads.modes import predict, train
from mtlheads.predict.inputs import input_files, read_inputs
from mtlheads.predict.stream import predict_stream
from mtlheads.tasks.glue_metrics import glue_metrics

PAIRS = [
    ("A man is playing a guitar.", "A man plays music.", 0),
    ("The cat sleeps.", "A dog barks loudly.", 1),
    ("Zoë bought bread in São Paulo.", "Someone bought bread.", 0),
] * 4
TASKS = {  # folder: (header of the text columns, label column, labels by class, test files)
    "RTE": ("sentence1\tsentence2", "label", ["entailment", "not_entailment"], ["test"]),
    "MNLI": (
        "sentence1\tsentence2",
        "gold_label",
        ["entailment", "contradiction"],
        ["test_matched", "test_mismatched"],
    ),
    "STS-B": ("sentence1\tsentence2", "score", ["4.5", "0.5"], ["test"]),
}
INDEX = [100 + 3 * i for i in range(len(PAIRS))]  # the test files' own index column


def tiny_glue(root: Path) -> None:
    for folder, (text, label, labels, tests) in TASKS.items():
        d = root / "glue" / folder
        d.mkdir(parents=True)
        labelled = [f"index\t{text}\t{label}"] + [
            f"{i}\t{a}\t{b}\t{labels[y]}" for i, (a, b, y) in enumerate(PAIRS)
        ]
        dev = "dev_matched" if folder == "MNLI" else "dev"
        for split in ("train", dev, *(["dev_mismatched"] if folder == "MNLI" else [])):
            (d / f"{split}.tsv").write_text("\n".join(labelled) + "\n", encoding="utf-8")
        rows = [f"index\t{text}"] + [f"{k}\t{b}\t{a}" for k, (a, b, _) in zip(INDEX, PAIRS, strict=True)]
        for split in tests:
            (d / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def glue_run(tmp_path_factory, tiny_bert_dir) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("glue_data")
    tiny_glue(root)
    run = tmp_path_factory.mktemp("glue_run")
    overrides = [
        "taskset=[rte,mnli,stsb]",
        f"data_dir={root}",
        f"encoder.name={tiny_bert_dir}",
        "trainer=smoke",
    ]
    train.run(compose_config([*overrides, "logger=none", f"out_dir={run}"]))
    return run, root


def test_glue_test_sets_give_one_leaderboard_file_per_task(glue_run, tmp_path) -> None:
    run, root = glue_run
    assert predict.run(predict_cfg(run, tmp_path)) is None  # no labels: no score
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test"] == {}
    folder = tmp_path / "predictions" / "glue"
    assert sorted(p.name for p in folder.iterdir()) == ["MNLI-m.tsv", "MNLI-mm.tsv", "RTE.tsv", "STS-B.tsv"]
    model, tokenizer, train_cfg = load_model(run)
    cfg = predict_cfg(run, tmp_path)
    inputs = read_inputs(input_files(cfg, model.tasks, train_cfg), model.tasks, tokenizer)
    assert [Path(i.path).relative_to(root).as_posix() for i in inputs] == [
        "glue/RTE/test.tsv",
        "glue/MNLI/test_matched.tsv",
        "glue/MNLI/test_mismatched.tsv",
        "glue/STS-B/test.tsv",
    ]
    for inp in inputs:
        (name,) = inp.splits
        file = folder / glue_prediction_name(name, Path(inp.path).stem)
        rows = read_glue_predictions(file, task=name)
        assert [r[0] for r in rows] == [str(k) for k in INDEX]  # the file's own indices, in its order
        preds = [
            p[name] for _, p in predict_stream(model, tokenizer, inp, cfg.batch, metrics={}, progress=False)
        ]
        if name == "stsb":
            assert [r[1] for r in rows] == preds and all(isinstance(p, float) for p in preds)  # exact
        else:
            assert [r[1] for r in rows] == preds
    assert (folder / "RTE.tsv").read_text(encoding="utf-8").splitlines()[0] == "index\tprediction"


def test_a_labelled_glue_file_is_scored_and_written(glue_run, tmp_path) -> None:
    run, root = glue_run
    dev = root / "glue" / "RTE" / "dev.tsv"
    score = predict.run(predict_cfg(run, tmp_path, f"eval_files.rte={dev}"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = read_glue_predictions(tmp_path / "predictions" / "glue" / "RTE.tsv", task="rte")
    gold = read_glue(dev, task="rte")
    assert [r[0] for r in rows] == [e.guid for e in gold]
    assert (
        glue_metrics("rte", [r[1] for r in rows], [e.label for e in gold])["acc"]
        == metrics["test"]["rte"]["acc"]
    )
    assert score == metrics["test"]["rte"]["acc"]


def test_an_mnli_file_that_is_neither_matched_nor_mismatched_is_refused_before_writing(
    glue_run, tmp_path
) -> None:
    run, root = glue_run
    other = tmp_path / "other.tsv"
    other.write_text(
        (root / "glue" / "MNLI" / "test_matched.tsv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="matched or mismatched"):
        # stsb comes before mnli: its file would be written first if names were checked only when writing
        stsb = f"eval_files.stsb={root / 'glue' / 'STS-B' / 'dev.tsv'}"
        predict.run(predict_cfg(run, out, stsb, f"eval_files.mnli={other}"))
    assert not out.exists() or not any(out.iterdir())
