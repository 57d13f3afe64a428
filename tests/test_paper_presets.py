"""The paper-setting presets (experiment=stem_cell/table1, stl_*, mtl5); λ keyed on encoder family and task.

The expected values are typed from the Stem Cell Hypothesis' scripts (shared/reference/stem-cell-hypothesis.md
§4.1, §5, §6.2, §9), not read from the configs under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import compose_config, run_cli
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate

from mtlheads.heads.l0 import default_lambda
from mtlheads.launch.resolvers import CONF_DIR, register_resolvers

# preset -> (mode, tasks, gradient accumulation, balancer on): §4.1 (STL GA per task), §5 (MTL-5)
TABLE1 = {
    "stl_pos": ("stl", ["pos"], 2, False),
    "stl_ner": ("stl", ["ner"], 2, False),
    "stl_dep": ("stl", ["dep"], 1, False),
    "stl_con": ("stl", ["con"], 1, False),
    "stl_srl": ("stl", ["srl"], 4, False),
    "mtl5": ("mtl", ["pos", "ner", "dep", "con", "srl"], 4, True),
}
EPOCHS, PATIENCE = 30, 15  # 30 epochs; patience=0.5 of them


def _table1_jobs() -> list[list[str]]:
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=stem_cell/table1"], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return batch


def _settings(cfg) -> tuple:
    return (
        cfg.mode.name,
        list(cfg.tasks),
        cfg.trainer.accumulate_grad_batches,
        cfg.balancer is not None and cfg.balancer._target_.endswith("MovingAverageBalancer"),
    )


def test_table1_sweeps_five_stl_models_and_mtl5_with_the_papers_settings_for_three_seeds():
    jobs = _table1_jobs()
    assert len(jobs) == 18
    seen = set()
    for job in jobs:
        cfg = compose_config(["experiment=stem_cell/table1", *job])
        preset = next(o.split("=", 1)[1] for o in job if o.startswith("+experiment/"))
        assert _settings(cfg) == TABLE1[preset], job
        assert (cfg.trainer.max_epochs, cfg.patience) == (EPOCHS, PATIENCE)
        assert (cfg.batch.max_sentences, cfg.batch.max_tokens) == (64, 6400)  # per update
        assert (cfg.optim.encoder_lr, cfg.optim.decoder_lr) == (5e-5, 1e-3)
        seen.add((preset, cfg.seed))
    assert seen == {(p, s) for p in TABLE1 for s in (1, 2, 3)}


@pytest.mark.parametrize("preset", sorted(TABLE1))
def test_each_preset_alone_and_a_single_table1_run(preset):
    cfg = compose_config([f"experiment=stem_cell/{preset}"])
    assert _settings(cfg) == TABLE1[preset]
    assert (cfg.trainer.max_epochs, cfg.patience) == (EPOCHS, PATIENCE)
    # scaled down on the command line, as the presets' comments say
    assert compose_config([f"experiment=stem_cell/{preset}", "trainer.max_epochs=2"]).trainer.max_epochs == 2
    if preset == "mtl5":  # without -m, table1 trains MTL-5
        assert _settings(compose_config(["experiment=stem_cell/table1"])) == TABLE1["mtl5"]


def test_table1_runs_as_a_real_multirun_and_records_its_settings(tmp_path, tiny_bert_dir):
    """Two of the jobs (the sweep narrowed on the command line), on the excerpt with a tiny encoder."""
    args = ["-m", "experiment=stem_cell/table1", "+experiment/stem_cell@_global_=stl_pos,stl_srl", "seed=1"]
    args += ["trainer=smoke", "trainer.max_epochs=1", "logger=none", f"encoder={tiny_bert_dir}"]
    args += [f"hydra.sweep.dir={tmp_path}"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {}
    for metrics in sorted(Path(tmp_path).glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        runs[m["tasks"][0]] = (m["mode"], (metrics.parent / "config.yaml").read_text())
    assert sorted(runs) == ["pos", "srl"]
    assert runs["pos"][0] == runs["srl"][0] == "stl"
    assert "accumulate_grad_batches: 2" in runs["pos"][1] and "accumulate_grad_batches: 4" in runs["srl"][1]
    assert all("patience: 15" in text and "balancer: null" in text for _, text in runs.values())


# (encoder config, task set, λ): reference §6.2; MiniLM, ALBERT and unknown encoders keep BERT-base's λ
LAMBDAS = [
    ("bert-base-cased", "pos", 0.01),
    ("bert-base-cased", "ner", 0.0002),
    ("bert-base-cased", "dep", 0.01),
    ("bert-base-cased", "con", 0.01),
    ("bert-base-cased", "srl", 0.001),
    ("roberta-base", "srl", 0.002),
    ("roberta-base", "dep", 0.01),
    ("electra-base", "srl", 0.002),
    ("electra-base", "ner", 0.0002),
    ("deberta-base", "srl", 0.002),
    ("deberta-base", "dep", 0.02),
    ("deberta-base", "pos", 0.01),
    ("deberta-v3-base", "dep", 0.02),
    ("minilm", "srl", 0.001),
    ("albert-base-v2", "srl", 0.001),
    ("xlm-roberta-base", "dep", 0.01),
    ("roberta-base", "ewt5", 0.001),  # one gate set for several tasks: 0.001 on every encoder
    ("deberta-base", "ewt5", 0.001),
]


def _gate(overrides: list[str]):
    cfg = compose_config(["mode=gate", *overrides])
    kwargs = {k: v for k, v in cfg.heads.items() if k != "name"}
    return cfg, instantiate(kwargs, num_layers=2, num_heads=4, tasks=list(cfg.tasks))


@pytest.mark.parametrize(("encoder", "taskset", "lam"), LAMBDAS)
def test_lambda_null_is_the_papers_lambda_for_encoder_family_and_task(encoder, taskset, lam):
    cfg, gate = _gate([f"encoder={encoder}", f"taskset={taskset}"])
    assert gate.lam == pytest.approx(lam)
    assert default_lambda(list(cfg.tasks), cfg.encoder.family) == pytest.approx(lam)


def test_lambda_for_unknown_encoders_and_explicit_values():
    cfg, gate = _gate(["encoder=auto", "encoder.name=/models/some-bert", "taskset=srl"])
    assert cfg.encoder.family is None and gate.lam == pytest.approx(0.001)  # default_lambda as before
    assert default_lambda(["srl"], "no-such-family") == 0.001 and default_lambda(["gloss"], "deberta") == 0.01
    _, gate = _gate(["encoder=deberta-base", "taskset=dep", "heads.lam=0.5"])
    assert gate.lam == 0.5  # a given λ wins over the table


def test_deberta_v1_config_is_the_papers_encoder_next_to_v3():
    assert compose_config(["encoder=deberta-base"]).encoder.name == "microsoft/deberta-base"
    assert compose_config(["encoder=deberta-v3-base"]).encoder.name == "microsoft/deberta-v3-base"
    families = {p.stem: compose_config([f"encoder={p.stem}"]).encoder.get("family") for p in _encoders()}
    assert families == {
        "albert-base-v2": "albert",
        "bert-base-cased": "bert",
        "deberta-base": "deberta",
        "deberta-v3-base": "deberta",
        "electra-base": "electra",
        "minilm": "minilm",
        "roberta-base": "roberta",
        "xlm-roberta-base": "xlm-roberta",
    }


def _encoders() -> list[Path]:
    return sorted(p for p in (Path(CONF_DIR) / "encoder").glob("*.yaml") if p.stem != "auto")
