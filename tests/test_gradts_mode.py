"""mode=gradts: the trial rule and fg subsets on fabricated runs, and the whole pipeline on the excerpt."""

from __future__ import annotations

import json

import torch
from conftest import compose_config, run_cli
from omegaconf import OmegaConf
from scipy.stats import kendalltau

from mtlheads.modes import gradts
from mtlheads.utils.io import atomic_save


def _fake_sweep(sweep, main: str, metric: str, per_seed_histories: list[list[float]]) -> None:
    for i, values in enumerate(per_seed_histories):
        job = sweep / f"{i}_mtl-s{i + 1}"
        job.mkdir(parents=True)
        history = [{main: {metric: v}} for v in values]
        (job / "metrics.json").write_text(json.dumps({"history": history}))


def _cfg(**gradts_keys):
    return OmegaConf.create({"threshold": 0.5, "gradts": {"seeds": [1], "train": [], **gradts_keys}})


def test_trial_adds_auxiliaries_by_tau_stops_at_the_first_drop_and_keeps_the_best(tmp_path):
    tasks = ["rte", "a", "b", "c", "d"]
    tau = [[1, 0.1, 0.9, 0.5, 0.3]] + [[0.0] * 5 for _ in range(4)]  # rte's row: b > c > d > a
    (tmp_path / "correlate").mkdir()
    (tmp_path / "correlate" / "tau.json").write_text(json.dumps({"tasks": tasks, "tau": tau}))
    # k1 (+b): best .60, last .58; k2 (+b,c): best .63 >= .58 -> go on, last .55;
    # k3 (+b,c,d): best .54 < .55 -> stop; k4 is never run
    for k, history in ((1, [0.5, 0.6, 0.58]), (2, [0.63, 0.55]), (3, [0.54, 0.5])):
        _fake_sweep(tmp_path / "trial" / "rte" / f"k{k}", "rte", "acc", [history])
    record = gradts.trial(_cfg(), tmp_path, "rte", tasks, "acc", [])
    assert record["order"] == ["b", "c", "d", "a"]
    assert [r["k"] for r in record["runs"]] == [1, 2, 3] and record["stopped_at"] == 3
    assert record["selected"] == ["b", "c"] and record["dev"] == 0.63
    assert json.loads((tmp_path / "trial" / "rte" / "trial.json").read_text()) == record


def test_fine_grained_keeps_auxiliary_instances_at_or_above_the_threshold(tmp_path):
    (tmp_path / "trial" / "rte").mkdir(parents=True)
    (tmp_path / "trial" / "rte" / "trial.json").write_text(json.dumps({"selected": ["b"]}))
    atomic_save(torch.tensor([0.7, 0.5, 0.49, -0.2, 0.5], dtype=torch.float64),
                tmp_path / "correlate" / "instances" / "rte" / "b.pt")  # fmt: skip
    _fake_sweep(tmp_path / "fg" / "rte" / "t0.5", "rte", "acc", [[0.61, 0.64]])
    record = gradts.fine_grained(_cfg(), tmp_path, "rte", "acc", [])
    assert json.loads((tmp_path / "fg" / "rte" / "keep_b.json").read_text()) == [0, 1, 4]  # inclusive
    assert record["usage"] == {"b": {"kept": 3, "scored": 5}} and record["dev"] == 0.64


def test_the_whole_pipeline_on_the_excerpt_and_a_training_subset(tmp_path, tiny_bert_dir):
    out = tmp_path / "run"
    args = [
        "mode=gradts",
        "stage=all",
        "taskset=[pos,ner,dep]",
        f"encoder.name={tiny_bert_dir}",
        "logger=none",
    ]
    args += [
        "gradts.finetune=['trainer=smoke']",
        "gradts.train=['trainer=smoke']",
        "gradts.limit=30",
        "threshold=0.0",
    ]
    proc = run_cli([*args, f"out_dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tau = json.loads((out / "correlate" / "tau.json").read_text())
    pos = torch.load(out / "importance" / "pos.pt", weights_only=True)
    dep = torch.load(out / "importance" / "dep.pt", weights_only=True)
    assert pos["instances"].shape == (30, 2, 4) and pos["examples"] == 30
    assert tau["tau"][0][2] == kendalltau(pos["task"].flatten(), dep["task"].flatten())[0]  # τ-b by scipy
    assert all(abs(tau["tau"][i][i] - 1.0) < 1e-12 for i in range(3))
    per_instance = torch.load(out / "correlate" / "instances" / "pos" / "dep.pt", weights_only=True)
    assert per_instance.shape == (30,)
    assert per_instance[3] == kendalltau(pos["task"].flatten(), dep["instances"][3].flatten())[0]
    for main in ("pos", "ner", "dep"):
        fg = json.loads((out / "fg" / main / "fg.json").read_text())
        keep = json.loads((out / "fg" / main / f"keep_{fg['aux'][0]}.json").read_text())
        assert fg["usage"][fg["aux"][0]]["kept"] == len(keep) <= 30
    table = (out / "gradts.md").read_text()
    assert all(m in table for m in ("| pos |", "| ner |", "| dep |"))
    assert (out / "correlate" / "tau.png").is_file()


def test_a_train_subset_keeps_the_listed_sentences(tmp_path, tiny_bert_dir):
    from mtlheads.build import build_encoder, build_tasks, read_task_data

    (tmp_path / "keep.json").write_text(json.dumps([5, 0, 7]))
    cfg = compose_config(
        ["taskset=pos", f"encoder.name={tiny_bert_dir}", f"+tasks.pos.keep={tmp_path / 'keep.json'}"]
    )
    tasks = build_tasks(cfg)
    _, tokenizer = build_encoder(cfg.encoder)
    full = tasks["pos"].read(cfg.tasks.pos.train)
    data = read_task_data(cfg, tasks, tokenizer)
    assert [s.words for s in data["pos"]["train"].sentences] == [full[i].words for i in (0, 5, 7)]
    assert len(data["pos"]["dev"].sentences) > 3  # the other splits stay whole
