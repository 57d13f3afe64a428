"""mode=predict on files: every output format through the recipe, read back with our own readers.

A tiny random BERT is trained for a few batches on the shipped EWT excerpt (all five tasks) and predicts
the excerpt's test files. Its predictions are far from gold, so a writer that copied a gold column, or a
file that is not what was scored, fails these tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import conllu
import pytest
from conftest import predict_cfg, run_cli

from mtlheads.checkpoint import load_model
from mtlheads.data import excerpt_dir, read_conll2012, read_conllu, read_iob2
from mtlheads.data.sentence import DataFormatError
from mtlheads.data.trees import gold_spans, to_string, to_tree
from mtlheads.modes import predict
from mtlheads.predict.inputs import input_files, read_inputs
from mtlheads.predict.stream import predict_stream
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.dep import DepMetric
from mtlheads.tasks.evalb import EvalbMetric
from mtlheads.tasks.ner import NerMetric
from mtlheads.tasks.pos import PosMetric
from mtlheads.tasks.scorer_conventions import read_props
from mtlheads.tasks.srl_metric import SrlMetric, clean_srl

EWT = excerpt_dir()
FILES = {  # what a five-task checkpoint writes for the excerpt's test files
    "test.pos+dep.conllu",
    "test.ner.iob2",
    "test.con+srl.conll",
    "test.con.ptb",
    "test.con.gold.ptb",
    "test.srl.props",
    "test.srl.gold.props",
}


@pytest.fixture(scope="module")
def tiny_run(tiny_ewt5_run) -> Path:
    return tiny_ewt5_run


@pytest.fixture(scope="module")
def predicted(tiny_run, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("predicted")
    predict.run(predict_cfg(tiny_run, out))
    return out, json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def second_pass(tiny_run, tmp_path_factory) -> dict[str, list]:
    """The predictions of each input, from the same stream the recipe writes, collected in memory."""
    model, tokenizer, train_cfg = load_model(tiny_run)
    model.final_decode = True
    cfg = predict_cfg(tiny_run, tmp_path_factory.mktemp("unused"))
    inputs = read_inputs(input_files(cfg, model.tasks, train_cfg), model.tasks, tokenizer)
    return {
        inp.fmt: [p for _, p in predict_stream(model, tokenizer, inp, cfg.batch, metrics={}, progress=False)]
        for inp in inputs
    }


def test_every_task_predicts_in_one_call_into_the_listed_files(predicted) -> None:
    out, metrics = predicted
    assert metrics["mode"] == "predict" and set(metrics["test"]) == {"pos", "ner", "dep", "con", "srl"}
    written = [w for r in metrics["predictions"] for w in r["written"]]
    assert {Path(w).name for w in written} == FILES
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(FILES)  # no temp file left
    assert {tuple(r["tasks"]) for r in metrics["predictions"]} == {("pos", "dep"), ("ner",), ("con", "srl")}
    assert all(r["sentences"] == 98 for r in metrics["test"].values())


def test_conllu_holds_the_scored_pos_and_dep_predictions(predicted, second_pass) -> None:
    out, metrics = predicted
    back = read_conllu(out / "predictions" / "test.pos+dep.conllu")
    gold = read_conllu(EWT / "ud" / "test.conllu")
    assert [s.pos for s in back] == [p["pos"] for p in second_pass["conllu"]]  # round trip
    assert [(s.heads, s.rels) for s in back] == [tuple(p["dep"]) for p in second_pass["conllu"]]
    pos, dep = PosMetric(), DepMetric()
    pos.update([s.pos for s in back], gold)
    dep.update([(s.heads, s.rels) for s in back], gold)
    assert pos.compute()["acc"] == metrics["test"]["pos"]["acc"] < 0.9  # the model's tags, not gold
    assert dep.compute() == {k: metrics["test"]["dep"][k] for k in ("uas", "las")}
    assert [s.words for s in back] == [s.words for s in gold] and [s.meta for s in back] == [
        s.meta for s in gold
    ]
    assert len(conllu.parse((out / "predictions" / "test.pos+dep.conllu").read_text(encoding="utf-8"))) == 98


def test_iob2_holds_the_scored_entities(predicted, second_pass) -> None:
    out, metrics = predicted
    back = read_iob2(out / "predictions" / "test.ner.iob2")
    assert [s.entities for s in back] == [p["ner"] for p in second_pass["iob2"]]
    metric = NerMetric()
    metric.update([s.entities for s in back], read_iob2(EWT / "ner" / "test.iob2"))
    assert metric.compute() == {k: metrics["test"]["ner"][k] for k in ("p", "r", "f1")}


def test_conll2012_ptb_and_props_hold_the_scored_trees_and_frames(predicted, second_pass) -> None:
    out, metrics = predicted
    folder, preds = out / "predictions", second_pass["conll"]
    gold = read_conll2012(EWT / "conll2012" / "test.gold_conll")
    back = read_conll2012(folder / "test.con+srl.conll")
    # the tree of the predicted (binarised) spans, as the metric builds it; dummy-node labels are not kept
    expected = [ConTask.to_tree(p["con"], g) for p, g in zip(preds, gold, strict=True)]
    assert [to_string(to_tree(s.tree)) for s in back] == expected
    assert [clean_srl(s.srl) for s in back] == [clean_srl(p["srl"]) for p in preds]
    assert [s.words for s in back] == [s.words for s in gold] and [s.pos for s in back] == [
        s.pos for s in gold
    ]
    trees = (folder / "test.con.ptb").read_text(encoding="utf-8").splitlines()
    assert trees == expected != [to_string(to_tree(g.tree)) for g in gold]
    con = EvalbMetric()
    con.update(trees, gold)
    assert con.compute() == {k: metrics["test"]["con"][k] for k in ("p", "r", "f1")}
    props = read_props(folder / "test.srl.props")
    assert [[(q, [a for a in args if a[2] != "V"]) for q, args in f] for f in props] == [
        p["srl"] for p in preds
    ]
    srl = SrlMetric()
    srl.update([clean_srl(s.srl) for s in back], gold)
    assert srl.compute() == {k: metrics["test"]["srl"][k] for k in srl.compute()}
    # the gold sides are the input's layers
    gold_trees = (folder / "test.con.gold.ptb").read_text(encoding="utf-8").splitlines()
    assert [list(gold_spans(t)) for t in gold_trees] == [list(gold_spans(s.tree)) for s in gold]
    assert [clean_srl(f) for f in read_props(folder / "test.srl.gold.props")] == [
        clean_srl(s.srl) for s in gold
    ]


def test_eval_files_choose_the_tasks_and_files(tiny_run, tmp_path) -> None:
    dev = EWT / "ud" / "dev.conllu"
    score = predict.run(predict_cfg(tiny_run, tmp_path, f"eval_files.dep={dev}"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["test"]) == {"dep"} and metrics["test"]["dep"]["file"] == str(dev)
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == ["dev.dep.conllu"]
    assert score == metrics["test"]["dep"]["las"]
    back = read_conllu(tmp_path / "predictions" / "dev.dep.conllu")
    assert [s.pos for s in back] == [s.pos for s in read_conllu(dev)]  # POS not predicted: the input's column


def test_a_bad_line_fails_with_file_and_line_before_anything_is_written(tiny_run, tmp_path) -> None:
    lines = (EWT / "ner" / "test.iob2").read_text(encoding="utf-8").splitlines()
    k = next(i for i, line in enumerate(lines) if line[:1].isdigit() and i > 200)
    lines[k] = lines[k].replace("\t", " ", 1)  # one column short
    bad = tmp_path / "bad.iob2"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match=rf"bad\.iob2:{k + 1}\b"):
        # pos is read (fine) before ner: still nothing may be written
        predict.run(
            predict_cfg(
                tiny_run, out, f"eval_files.pos={EWT / 'ud' / 'test.conllu'}", f"eval_files.ner={bad}"
            )
        )
    assert not out.exists() or not any(out.iterdir())


def test_a_failing_writer_leaves_no_file_of_its_input(tiny_run, tmp_path, monkeypatch) -> None:
    calls = []

    def decode(out, mask, *, final=False):  # a relation no CoNLL-U column can hold, on the second batch
        calls.append(1)
        heads_rels = original(out, mask, final=final)
        return [(h, ["bad\trel"] * len(r)) for h, r in heads_rels] if len(calls) > 1 else heads_rels

    model, tokenizer, _ = load_model(tiny_run)
    original = model.tasks["dep"].decode
    monkeypatch.setattr(predict, "load_model", lambda _: (model, tokenizer, _cfg(model)))
    monkeypatch.setattr(model.tasks["dep"], "decode", decode)
    cfg = predict_cfg(
        tiny_run, tmp_path, f"eval_files.dep={EWT / 'ud' / 'test.conllu'}", "batch.eval_max_tokens=2000"
    )
    with pytest.raises(ValueError, match="cannot be written"):
        predict.run(cfg)
    assert len(calls) >= 2
    assert not (tmp_path / "predictions").exists() or not any((tmp_path / "predictions").iterdir())
    assert not (tmp_path / "metrics.json").exists()


def _cfg(model):
    from omegaconf import OmegaConf

    from mtlheads.checkpoint import CONFIG_KEY

    return OmegaConf.create(model.checkpoint_extras[CONFIG_KEY])


def test_progress_bar_follows_trainer_enable_progress_bar(tiny_run, tmp_path, capfd) -> None:
    dev = f"eval_files.pos={EWT / 'ud' / 'dev.conllu'}"
    predict.run(predict_cfg(tiny_run, tmp_path / "quiet", dev))
    assert "predict pos" not in capfd.readouterr().err
    predict.run(predict_cfg(tiny_run, tmp_path / "bar", dev, "trainer.enable_progress_bar=true"))
    assert "predict pos" in capfd.readouterr().err


def test_unknown_task_in_eval_files_is_refused(tiny_run, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"eval_files names tasks \['rte'\]"):
        predict.run(predict_cfg(tiny_run, tmp_path, "eval_files.rte=x.tsv"))


def test_predict_stream_decodes_one_batch_at_a_time(tiny_run, monkeypatch) -> None:
    model, tokenizer, train_cfg = load_model(tiny_run)
    cfg = predict_cfg(tiny_run, Path("unused"), "batch.eval_max_tokens=600")
    (inp,) = read_inputs({"pos": [str(EWT / "ud" / "test.conllu")]}, model.tasks, tokenizer)
    decoded: list[int] = []
    original = model.tasks["pos"].decode
    monkeypatch.setattr(model.tasks["pos"], "decode", lambda o, m, final: decoded.append(1) or original(o, m))
    stream = predict_stream(model, tokenizer, inp, cfg.batch, metrics={}, progress=False)
    first = next(stream)
    assert first[0] is inp.sentences[0] and len(decoded) == 1  # nothing decoded beyond the first batch
    assert len(list(stream)) == 97 and len(decoded) > 5


def test_the_command_line_writes_predictions_and_reports_a_bad_line_in_one_line(tiny_run, tmp_path) -> None:
    (tmp_path / "ok.txt").write_text("Hello world .\n\nZoë went home .\n", encoding="utf-8")
    done = run_cli(
        [
            "mode=predict",
            f"ckpt={tiny_run}",
            f"text={tmp_path / 'ok.txt'}",
            "tokenize=nltk",
            f"out_dir={tmp_path / 'a'}",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "a" / "predictions" / "ok.pos+ner+dep+srl.conllu").is_file()
    (tmp_path / "bad.txt").write_bytes(b"fine\nnot \xfe utf-8\n")
    failed = run_cli(
        ["mode=predict", f"ckpt={tiny_run}", f"text={tmp_path / 'bad.txt'}", f"out_dir={tmp_path / 'b'}"],
        cwd=tmp_path,
        timeout=600,
    )
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert re.search(r"error: \S*bad\.txt:2: not UTF-8", failed.stderr)
    assert not (tmp_path / "b" / "predictions").exists() and not (tmp_path / "b" / "metrics.json").exists()
