"""Hyperparameter searches without the network: W&B sweep files as the command lines their agents run, and
Optuna searches (conf/hparams_search/) that survive a kill, resume and record failed trials."""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import cli_env, run_cli, start_cli
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from mtlheads.launch.resolvers import CONF_DIR, register_resolvers
from mtlheads.report import cli, optuna_search, search

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "sweeps"
EXCERPT = ROOT / "src" / "mtlheads" / "resources" / "ewt"
SWEEP_FILES = sorted(SWEEPS.glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (Path(CONF_DIR) / "hparams_search").glob("[!_]*.yaml"))
AGENT_ENV = {"WANDB_SWEEP_ID": "sweep0", "WANDB_RUN_ID": "run0"}


def search_override(name: str) -> str:
    """``hparams_search=<name>`` (``+hparams_search=`` while conf/config.yaml's defaults lack the group)."""
    defaults = yaml.safe_load((Path(CONF_DIR) / "config.yaml").read_text())["defaults"]
    listed = any(isinstance(d, dict) and "hparams_search" in d for d in defaults)
    return f"{'' if listed else '+'}hparams_search={name}"


# ---- W&B sweep files -> what `wandb agent` runs -----------------------------------------------------


def _sample(spec: dict, rng: random.Random) -> Any:
    """One value of a W&B sweep parameter (the distributions our sweep files use)."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return rng.choice(spec["values"])
    low, high = spec["min"], spec["max"]
    distribution = spec.get("distribution", "int_uniform" if isinstance(low, int) else "uniform")
    if distribution == "uniform":
        return rng.uniform(low, high)
    if distribution == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if distribution == "int_uniform":
        return rng.randint(low, high)
    raise ValueError(f"distribution {distribution} is not sampled by this test: add it here")


def agent_assignments(sweep: dict, n: int = 3, seed: int = 0) -> list[dict]:
    """The parameter values of the runs an agent gets: every combination (grid), else n seeded samples
    (random; bayes starts from random samples as well)."""
    params = sweep["parameters"]
    if sweep["method"] == "grid":
        choices = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
        return [dict(zip(params, combo, strict=True)) for combo in itertools.product(*choices)]
    rng = random.Random(seed)
    return [{k: _sample(v, rng) for k, v in params.items()} for _ in range(n)]


def agent_argv(sweep: dict, values: dict) -> list[str]:
    """The command ``wandb agent`` runs for one set of values (its own helpers build the arguments; the
    macro substitution below is what ``wandb.wandb_agent.Agent._command_run`` does with them)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(copy.deepcopy(sweep["command"]))  # ${envvar:...}
    macros = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in values.items()}})
    macros |= {"env": ["/usr/bin/env"], "interpreter": ["python"], "program": [sweep.get("program")]}
    argv: list[str] = []
    for item in map(str, command):
        whole_macro = item.startswith("${") and item.endswith("}")
        argv += (macros.get(item[2:-1]) or []) if whole_macro else [item]
    return argv


def hydra_overrides(argv: list[str]) -> list[str]:
    """The overrides of an agent's command line (what follows ``-m mtlheads.cli``)."""
    assert argv[:4] == ["/usr/bin/env", "python", "-m", "mtlheads.cli"], argv
    return argv[4:]


def _compose(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_sweep_files_cover_the_searches_and_are_agent_commands_of_mtlheads():
    assert {p.stem for p in SWEEP_FILES} >= {
        "stl_pos_lr",
        "gate_pos_target",
        "mtl5_temperature",
        "rte_lr_epochs",
    }
    assert {_load(p)["method"] for p in SWEEP_FILES} == {"grid", "random", "bayes"}
    for path in SWEEP_FILES:
        sweep = _load(path)
        command = [str(c) for c in sweep["command"]]
        assert command[:4] == ["${env}", "${interpreter}", "-m", "mtlheads.cli"], path
        assert command[-1] == "${args_no_hyphens}" and "logger.offline=false" in command, path
        assert "hydra.run.dir=wandb-sweeps/${oc.env:WANDB_SWEEP_ID}/${oc.env:WANDB_RUN_ID}" in command
        assert sweep["metric"]["goal"] in ("maximize", "minimize") and sweep["parameters"], path
        assert sweep["name"] == path.stem and sweep["project"] == "mtlheads"


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_agent_command_composes_with_the_sweeps_values(path, monkeypatch):
    from mtlheads.build import build_tasks

    for key, value in AGENT_ENV.items():
        monkeypatch.setenv(key, value)
    sweep = _load(path)
    runs = agent_assignments(sweep)
    if sweep["method"] == "grid":
        assert len(runs) == math.prod(len(p["values"]) for p in sweep["parameters"].values())
    assert len({json.dumps(r, sort_keys=True) for r in runs}) == len(runs)
    for values in runs:
        cfg = _compose(hydra_overrides(agent_argv(sweep, values)))
        for key, value in values.items():
            assert OmegaConf.select(cfg, key.lstrip("+")) == pytest.approx(value), (key, value)
        assert cfg.logger.offline is False and cfg.data_dir == "../shared/data"
        assert cfg.hydra.run.dir == "wandb-sweeps/sweep0/run0"
    # The metric the sweep optimises is one every run logs: dev/score or dev/<task>/<its main metric>.
    tasks = build_tasks(cfg)
    logged = {"dev/score"} | {f"dev/{n}/{t.main_metric}" for n, t in tasks.items()}
    assert sweep["metric"]["name"] in logged


def test_parameter_named_with_a_plus_is_appended_to_the_config(monkeypatch):
    for key, value in AGENT_ENV.items():
        monkeypatch.setenv(key, value)
    sweep = _load(SWEEPS / "stl_pos_lr.yaml")
    sweep["parameters"] = {"+trainer.limit_train_batches": {"values": [3]}, "optim.warmup": {"values": [0.2]}}
    (values,) = agent_assignments({**sweep, "method": "grid"})
    overrides = hydra_overrides(agent_argv(sweep, values))
    assert overrides[-2:] == ["+trainer.limit_train_batches=3", "optim.warmup=0.2"]
    cfg = _compose(overrides)
    assert cfg.trainer.limit_train_batches == 3 and cfg.optim.warmup == 0.2
    with pytest.raises(ConfigCompositionException, match=r"\+trainer.limit_train_batches"):
        _compose([o.lstrip("+") for o in overrides])  # not in trainer/default.yaml: Hydra wants the +


def test_an_agent_run_logs_into_the_sweeps_wandb_run_and_its_metric(tmp_path, tiny_bert_dir):
    """The first run of sweeps/stl_pos_lr.yaml as `wandb agent` starts it: its environment, its command."""
    from wandb.sdk.lib import config_util

    sweep = _load(SWEEPS / "stl_pos_lr.yaml")
    values = agent_assignments(sweep, n=1, seed=3)[0]
    argv = agent_argv(sweep, values)
    params = tmp_path / "wandb" / "sweep-sweep0" / "config-run0.yaml"  # where the agent writes them
    config_util.save_config_file_from_dict(str(params), {k: {"value": v} for k, v in values.items()})
    env = {
        **AGENT_ENV,
        "WANDB_SWEEP_PARAM_PATH": str(params),
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }
    # The excerpt and a tiny encoder instead of the full data and MiniLM (later overrides win).
    smoke = ["data_dir=null", "trainer=smoke", f"encoder={tiny_bert_dir}"]
    proc = run_cli([*hydra_overrides(argv), *smoke], tmp_path, timeout=600, **env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    run_dir = tmp_path / "wandb-sweeps" / "sweep0" / "run0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (wandb_run,) = run_dir.glob("wandb/offline-run-*-run0")  # WANDB_RUN_ID: the sweep's run, not a new one
    records = wandb_records(next(wandb_run.glob("run-*.wandb")))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_id, run.sweep_id, run.display_name) == ("run0", "sweep0", "stl-pos-s1")
    sweep_config = {item.key: json.loads(item.value_json) for item in run.config.update}
    for key, value in values.items():  # the sweep's parameters, read from WANDB_SWEEP_PARAM_PATH
        assert sweep_config[key] == pytest.approx(value)
    # What the sweep optimises: the run's last value of metric.name, the best checkpoint's dev score.
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary |= {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.summary.update}
    assert summary[sweep["metric"]["name"]] == pytest.approx(metrics["dev"]["pos"]["acc"])
    assert summary["dev/score"] == pytest.approx(metrics["dev"]["score"])
    assert metrics["encoder"] == tiny_bert_dir and metrics["tasks"] == ["pos"]


def wandb_records(path: Path) -> list:
    """The protobuf records of an offline W&B run file (run-*.wandb): a 7-byte file header, then a
    LevelDB-style log of 32 KiB blocks whose chunks have a 7-byte header (crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


# ---- Optuna searches --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SEARCHES)
def test_search_presets_compose_an_optuna_tpe_study_stored_in_the_sweep_dir(name, tmp_path):
    cfg = _compose([search_override(name), "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_.endswith("TPESampler")
    assert sweeper.storage == f"sqlite:///{tmp_path}/optuna.db" and sweeper.study_name == name
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 1 and 6 <= sweeper.n_trials <= 10
    assert set(cfg.hydra.callbacks) == {"failure_summary", "search"}
    # Trial dirs are named by every searched key, so a re-run trial finds its own dir.
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
    assert all("${" + key + "}" in subdir for key in sweeper.params), subdir
    for key in sweeper.params:  # each searched key exists in the config the preset composes
        assert OmegaConf.select(cfg, key, default="absent") != "absent", key


def _study(sweep: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep}/optuna.db")


def _params(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's parameters (a queued one's are its ``fixed_params`` until the sweeper asks for it)."""
    return dict(sorted((trial.params or trial.system_attrs["fixed_params"]).items()))


def test_resume_queues_unfinished_trials_again_and_leaves_only_the_remaining_ones(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="stl_pos_lr", storage=storage, direction="maximize")
    distributions = {
        "optim.encoder_lr": optuna.distributions.LogUniformDistribution(1e-5, 2e-4),
        "optim.decoder_lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-2),
    }
    points = [{"optim.encoder_lr": e, "optim.decoder_lr": 1e-3} for e in (1e-5, 2e-5, 3e-5)]
    for point, state in [(0, "COMPLETE"), (1, "FAIL"), (2, "RUNNING"), (1, "FAIL"), (0, "FAIL")]:
        study.enqueue_trial(points[point])  # so that trials can share their parameters
        trial = study.ask()
        for key, dist in distributions.items():
            trial._suggest(key, dist)  # what the sweeper does for each trial
        if state == "COMPLETE":
            study.tell(trial, 0.5)
        elif state == "FAIL":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    before = study.get_trials(deepcopy=False)
    assert [t.state.name for t in before] == ["COMPLETE", "FAIL", "RUNNING", "FAIL", "FAIL"]

    overrides = [search_override("stl_pos_lr"), "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}"]
    cfg = _compose([*overrides, "hydra.sweeper.n_trials=8", "resume=true"])
    optuna_search.OptunaSearch().on_multirun_start(config=cfg)
    after = _study(tmp_path, "stl_pos_lr").get_trials(deepcopy=False)
    assert after[2].state.name == "FAIL"  # left running by a killed search
    waiting = [t for t in after if t.state.name == "WAITING"]
    # Queued again, once each, in trial order: failed trial 1's and interrupted trial 2's parameters;
    # trial 4's are not (the same parameters completed as trial 0).
    assert [_params(t) for t in waiting] == [_params(before[1]), _params(before[2])]
    assert cfg.hydra.sweeper.n_trials == 8 - 1  # completed trials count; the queued ones run first
    assert cfg.hydra.sweeper.sampler.seed == 1 + 5  # new points, not the first session's again
    saved = yaml.safe_load((tmp_path / "multirun.yaml").read_text())
    assert "resume=true" in saved["hydra"]["overrides"]["task"]

    # Run again with everything done: nothing left to run, nothing queued twice.
    cfg = _compose([*overrides, "hydra.sweeper.n_trials=1", "resume=true"])
    optuna_search.OptunaSearch().on_multirun_start(config=cfg)
    assert cfg.hydra.sweeper.n_trials == 0
    assert sum(t.state.name == "WAITING" for t in _study(tmp_path, "stl_pos_lr").trials) == 2

    # Without resume=true an existing study is not silently extended.
    with pytest.raises(ValueError, match="resume=true"):
        optuna_search.OptunaSearch().on_multirun_start(config=_compose(overrides))


def test_a_search_whose_trial_dirs_do_not_name_a_searched_key_is_refused(tmp_path):
    from omegaconf import open_dict, read_write

    overrides = [search_override("stl_pos_lr"), "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}"]
    # the preset's dirs name both keys
    optuna_search.OptunaSearch().on_multirun_start(config=_compose(overrides))
    # A key searched by the sweeper's params or by the command line (optim.warmup=interval(0,0.2)) that
    # the trial dir does not name: two trials would share a dir, and resume would mix them up.
    for where in ("params", "task"):
        cfg = _compose(overrides)
        with read_write(cfg), open_dict(cfg):
            if where == "params":
                cfg.hydra.sweeper.params["optim.warmup"] = "interval(0.0, 0.2)"
            else:
                cfg.hydra.overrides.task.append("optim.warmup=interval(0.0, 0.2)")
        with pytest.raises(ValueError, match=r"\['optim.warmup'\]"):
            optuna_search.OptunaSearch().on_multirun_start(config=cfg)
    # What the sweeper searches: swept values in its params or on the command line, minus fixed ones.
    params = {"heads.lam": "tag(log, interval(1e-4, 1e-1))"}
    task = ["+hparams_search=gate_pos_lam", "heads.lam=null", "heads.target_heads=interval(0.1, 0.7)"]
    assert search.searched_keys(params, task) == ["heads.target_heads"]
    assert search.searched_keys(params, ["heads.lam=choice(0.1, 0.01)"]) == ["heads.lam"]


def _wait(find: Callable[[], Any], proc: subprocess.Popen, what: str, timeout: float = 300) -> Any:
    """Polls ``find`` until it returns something; fails if the search ends or ``timeout`` passes first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = find()
        if found is not None:
            return found
        assert proc.poll() is None, f"the search ended (status {proc.returncode}) before {what}"
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_optuna_search_records_a_failed_trial_survives_a_kill_and_resumes(tmp_path, tiny_bert_dir):
    """A real 3-trial TPE search on the excerpt: trial 1 fails (its extra evaluation file is gone), the
    search goes on; it is killed (SIGKILL) while trial 2 runs; `resume=true` runs trials 1 and 2 only."""
    extra = tmp_path / "extra.conllu"
    extra.symlink_to(EXCERPT / "ud" / "dev.conllu")
    args = [
        "-m",
        search_override("stl_pos_lr"),
        "hydra.sweeper.n_trials=3",
        "trainer=smoke",
        "logger=wandb",
        f"encoder={tiny_bert_dir}",
        f"+tasks.pos.extra.again={extra}",
    ]
    with open(tmp_path / "first.log", "w") as out:
        proc = start_cli(
            args,
            tmp_path,
            env=cli_env(OMP_NUM_THREADS="1"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            sweep = _wait(lambda: next(tmp_path.glob("multirun/*/*"), None), proc, "the sweep dir")
            first = _wait(lambda: next(sweep.glob("*/metrics.json"), None), proc, "trial 0").parent
            extra.unlink()  # read by trial 1 once trained: it fails
            failed = _wait(lambda: next(sweep.glob("*/failure.json"), None), proc, "trial 1's failure").parent
            extra.symlink_to(EXCERPT / "ud" / "dev.conllu")

            def third() -> Path | None:
                return next(
                    (p.parent for p in sweep.glob("*/.hydra") if p.parent not in (first, failed)), None
                )

            killed = _wait(third, proc, "trial 2")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
    first_log = (tmp_path / "first.log").read_text()
    assert "Failed experiment" in first_log  # the sweeper saw trial 1 fail and went on
    assert not (killed / "metrics.json").exists() and not (sweep / search.RESULTS_FILE).exists()
    study = _study(sweep, "stl_pos_lr")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "RUNNING"]
    failure = json.loads((failed / "failure.json").read_text())
    assert failure["type"] == "FileNotFoundError" and "extra.conllu" in failure["error"]

    # The report of the killed search: 1 finished, the failure with its error, 1 unfinished.
    assert cli.main([str(sweep)]) == 0
    report = json.loads((sweep / "search.json").read_text())
    assert report["counts"] == {"finished": 1, "failed": 1, "unfinished": 1}
    assert [t["dir"] for t in report["trials"]] == [first.name, failed.name, killed.name]
    assert report["trials"][1]["error"].startswith("FileNotFoundError")

    before = (first / "metrics.json").stat().st_mtime_ns
    proc = run_cli([*args, "resume=true"], tmp_path, timeout=600, OMP_NUM_THREADS="1")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert list(tmp_path.glob("multirun/*/*")) == [sweep]  # found by resume=true, no new sweep
    assert log.count("Launching 1 jobs locally") == 2  # trials 1 and 2 again, nothing more
    trials = _study(sweep, "stl_pos_lr").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert [_params(t) for t in trials[3:]] == [_params(trials[1]), _params(trials[2])]
    dirs = sorted(p.parent for p in sweep.glob("*/.hydra"))
    assert dirs == sorted([first, failed, killed])  # the re-runs used their trials' dirs
    assert all((d / "metrics.json").is_file() for d in dirs) and not (failed / "failure.json").exists()
    assert (first / "metrics.json").stat().st_mtime_ns == before
    assert json.loads((sweep / "failures.json").read_text())["n_failed"] == 0

    # The best trial of the whole study, its overrides and config, in the sweep dir.
    results = yaml.safe_load((sweep / search.RESULTS_FILE).read_text())
    scores = {d.name: json.loads((d / "metrics.json").read_text())["dev"]["score"] for d in dirs}
    best = max(scores, key=scores.get)
    assert results["best_value"] == pytest.approx(scores[best]) and results["best_dir"] == best
    assert results["trials"] == {"COMPLETE": 3, "FAIL": 2}
    assert search_override("stl_pos_lr") in results["best_overrides"]
    assert (sweep / search.BEST_CONFIG).read_text() == (sweep / best / "config.yaml").read_text()
    for name in ("search.md", "search.json", "search.png", "search.pdf"):
        assert (sweep / name).stat().st_size > 0
    assert not list(sweep.glob(".*tmp"))

    # Every trial is its own offline W&B run, all in one group: the sweep's.
    group = f"{sweep.parent.name}_{sweep.name}"
    for d in dirs:
        runs = [wandb_records(next(r.glob("run-*.wandb"))) for r in d.glob("wandb/offline-run-*")]
        assert runs and all(
            r.run.run_group == group
            for records in runs
            for r in records
            if r.WhichOneof("record_type") == "run"
        )
