"""Experiment presets (conf/experiment/): what each one sweeps and runs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from conftest import run_cli
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from mtlheads.launch.resolvers import CONF_DIR, register_resolvers

EWT5 = ("pos", "ner", "dep", "con", "srl")


def _sweep_jobs(overrides: list[str], sweep_args: list[str]) -> list[list[str]]:
    """The jobs Hydra's basic sweeper makes from a preset's ``hydra.sweeper.params`` plus ``sweep_args``."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides(params + sweep_args)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


def test_stem_cell_pairs_sweeps_the_ten_task_pairs_times_seeds():
    jobs = _sweep_jobs(["experiment=stem_cell/pairs"], ["seed=1,2,3"])
    assert len(jobs) == 30
    pairs = {tuple(sorted(j[0].removeprefix("taskset=").strip("[]").split(","))) for j in jobs}
    assert pairs == {tuple(sorted(p)) for p in itertools.combinations(EWT5, 2)}
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=stem_cell/pairs", *jobs[0]])
    assert cfg.mode.name == "mtl" and list(cfg.tasks) == ["pos", "ner"] and cfg.seed == 1
    assert cfg.run_name == "mtl-pos+ner-s1"


def test_stem_cell_pairs_runs_as_a_real_multirun(tmp_path, tiny_bert_dir):
    """The command a user types: the preset's sweep is picked up by `-m`, one dir and metrics per pair."""
    args = ["-m", "experiment=stem_cell/pairs", "seed=1", "trainer=smoke", "logger=none"]
    args += ["trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    args += [f"encoder={tiny_bert_dir}", f"hydra.sweep.dir={tmp_path}"]
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(Path(tmp_path).glob("*/metrics.json"))]
    assert sorted(tuple(sorted(r["tasks"])) for r in runs) == sorted(
        tuple(sorted(p)) for p in itertools.combinations(EWT5, 2)
    )
    assert all(r["mode"] == "mtl" and set(r["test"]) >= set(r["tasks"]) for r in runs)


def test_figure_presets_sweep_what_each_figure_needs_and_draw_it(tmp_path):
    jobs = _sweep_jobs(["experiment=stem_cell/fig1a"], [])
    assert sorted(j[0] for j in jobs) == ["seed=1", "seed=2", "seed=3"]
    jobs = _sweep_jobs(["experiment=stem_cell/fig1g"], [])
    assert len(jobs) == 15 and {j[0] for j in jobs} == {f"taskset={t}" for t in EWT5}
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["experiment=stem_cell/fig1a"], return_hydra_config=True)
    assert cfg.mode.name == "gate" and list(cfg.tasks) == ["pos"] and cfg.optim.encoder_lr == 1e-5
    assert cfg.hydra.callbacks.draw_figures.figures == ["gate-overlap"]
    assert "failure_summary" in cfg.hydra.callbacks  # the preset adds a callback, keeps the others

    # the callback draws from the sweep's gated job dirs
    import torch
    from hydra.utils import instantiate

    for i in range(3):
        (tmp_path / f"{i}_gate-pos-s{i + 1}").mkdir()
        torch.save(torch.rand(2, 3), tmp_path / f"{i}_gate-pos-s{i + 1}" / "gates.pt")
    cfg.hydra.sweep.dir = str(tmp_path)
    instantiate(cfg.hydra.callbacks.draw_figures).on_multirun_end(config=cfg)
    assert (tmp_path / "figures" / "gate-overlap.png").is_file()
    assert (tmp_path / "figures" / "gate-overlap.pdf").is_file()


def test_super_tickets_presets_set_the_pipeline_and_the_sharing_run():
    from conftest import compose_config

    phase = compose_config(["experiment=super_tickets/phase_rte"])
    assert phase.mode.name == "tickets" and list(phase.tasks) == ["rte"]
    assert list(phase.mode.levels) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert list(phase.mode.seeds) == [1, 2]
    assert list(phase.mode.kinds) == ["winning", "random", "losing"] and phase.importance.kind == "ticket"
    share = compose_config(["experiment=super_tickets/mtl_share", "tickets=runs/t"])
    assert share.mode.name == "mtl" and share.tickets == "runs/t" and len(share.tasks) == 5
