"""Robust jobs: failures recorded and the sweep goes on, resume skips finished jobs, launchers, W&B groups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import compose_config, run_cli
from omegaconf import OmegaConf

from mtlheads.launch import jobs
from mtlheads.launch.rundirs import run_dir, sweep_dir

EXCERPT = Path(__file__).resolve().parents[2] / "src" / "mtlheads" / "resources" / "ewt"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(args, cwd, OMP_NUM_THREADS="1")


def _dirs(root: Path, *names: str) -> list[Path]:
    for name in names:
        (root / name).mkdir(parents=True)
    return [root / n for n in names]


def test_run_dir_resumes_the_newest_dir_of_that_run_name(tmp_path):
    root = tmp_path / "outputs"
    _dirs(
        root,
        "2026-01-02/09-00-00-000001_stl-pos-s1",
        "2026-01-03/08-00-00-000001_stl-pos-s1",  # newest of this run name
        "2026-01-03/08-00-00-000001_stl-pos-s1/nested",
        "2026-01-04/10-00-00-000001_stl-pos-s2",  # another seed
        "2026-01-04/10-00-00-000001_mtl-stl-pos-s1",  # the run name must match whole
        "notadate/10-00-00-000001_stl-pos-s1",
    )
    fresh = str(root / "2026-02-01/00-00-00-000000_stl-pos-s1")
    assert run_dir(True, str(root), "stl-pos-s1", fresh) == str(
        root / "2026-01-03/08-00-00-000001_stl-pos-s1"
    )
    assert run_dir(False, str(root), "stl-pos-s1", fresh) == fresh
    assert run_dir(True, str(root), "stl-ner-s1", fresh) == fresh
    assert run_dir(True, str(tmp_path / "none"), "stl-pos-s1", fresh) == fresh


def test_sweep_dir_resumes_the_newest_sweep_with_the_same_overrides(tmp_path):
    root = tmp_path / "multirun"
    same, older, other, newest_other = _dirs(
        root, "2026-01-02/10-00-00", "2026-01-01/23-00-00", "2026-01-02/11-00-00", "2026-01-03/00-00-00"
    )
    _dirs(root, "2026-01-04/00-00-00")  # no multirun.yaml: not a sweep
    for d, task in [
        (same, ["seed=1,2", "taskset=pos", "resume=true"]),
        (older, ["seed=1,2", "taskset=pos"]),
        (other, ["seed=1,2", "taskset=ner"]),
        (newest_other, ["taskset=pos", "seed=1,2"]),  # other order: other job numbers
    ]:
        (d / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": task}}}))
    fresh = str(root / "2026-02-01/00-00-00")
    assert sweep_dir(True, str(root), ["seed=1,2", "taskset=pos"], fresh) == str(same)
    assert sweep_dir(True, str(root), ["seed=1,2", "taskset=pos", "++resume=true"], fresh) == str(same)
    assert sweep_dir(True, str(root), ["seed=1,2", "taskset=ner", "resume=1"], fresh) == str(other)
    assert sweep_dir(True, str(root), ["seed=1"], fresh) == fresh
    # Hydra passes its overrides as a config node: an override holding an interpolation is compared as typed.
    (older / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": ["x=a_${seed}"]}}}))
    node = OmegaConf.create({"seed": 7, "task": ["x=a_${seed}", "resume=true"]}).task
    assert sweep_dir(True, str(root), node, fresh) == str(older)
    assert sweep_dir(False, str(root), ["seed=1,2", "taskset=pos"], fresh) == fresh


def _hydra_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from mtlheads.launch.resolvers import CONF_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_config_composes_with_ddp_resources():
    cfg = _hydra_cfg(["hydra/launcher=slurm", "trainer.devices=4", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.partition == "gpu" and launcher.timeout_min == 720 and launcher.nodes == 1
    assert launcher.tasks_per_node == 4 and launcher.gpus_per_node == 4  # one task per device
    assert {"mem_gb", "cpus_per_task", "array_parallelism"} <= set(launcher)
    assert launcher.submitit_folder.endswith("/.submitit/%j")
    nodes = _hydra_cfg(["hydra/launcher=slurm", "+trainer.num_nodes=2"]).hydra.launcher.nodes
    assert nodes == 2
    plugin = _hydra_cfg(["hydra/launcher=submitit_slurm"]).hydra.launcher  # the plugin's own, untouched
    assert plugin._target_ == launcher._target_ and plugin.timeout_min == 60
    parallel = _hydra_cfg(["hydra/launcher=local_parallel"]).hydra.launcher
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2


def test_wandb_group_is_the_experiment_else_the_sweep_else_mode_and_tasks():
    from hydra.core.hydra_config import HydraConfig

    from mtlheads.launch.resolvers import wandb_group

    saved = HydraConfig.instance().cfg
    try:
        for overrides, mode, group in [
            (["experiment=ewt_full"], "RUN", "ewt_full"),
            ([], "RUN", "stl-pos"),
            (["hydra.sweep.dir=multirun/2026-01-02/03-04-05"], "MULTIRUN", "2026-01-02_03-04-05"),
            (["hydra.sweep.dir=runs/lr_sweep"], "MULTIRUN", "lr_sweep"),
        ]:
            cfg = _hydra_cfg([*overrides, "hydra.mode=" + mode])
            HydraConfig.instance().set_config(cfg)
            assert wandb_group("stl-pos") == group
        logger_cfg = compose_config(["logger=wandb", "mode=stl", "taskset=pos"]).logger
        assert (logger_cfg.name, logger_cfg.job_type) == ("stl-pos-s1", "stl-pos")
    finally:
        HydraConfig.instance().cfg = saved


def test_failed_job_writes_failure_json_and_closes_its_wandb_run(tmp_path, monkeypatch):
    import wandb

    from mtlheads.build import build_logger, close_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(["logger=wandb", "taskset=pos", f"out_dir={tmp_path}"])

    def train(c):  # like modes.train: the logger is closed in a finally while the error propagates
        logger = build_logger(c, tmp_path)
        try:
            raise FloatingPointError("loss is nan")
        finally:
            close_logger(logger)

    with pytest.raises(FloatingPointError):  # a single run (no Hydra multirun): re-raised
        jobs.run_job(cfg, train)
    assert wandb.run is None
    failure = json.loads((tmp_path / "failure.json").read_text())
    assert (failure["type"], failure["error"]) == ("FloatingPointError", "loss is nan")
    assert failure["message"].startswith("raised at test_jobs.py:") and "Traceback" in failure["traceback"]
    (debug_log,) = tmp_path.glob("wandb/offline-run-*/logs/debug.log")
    assert "got exitcode: 1" in debug_log.read_text()

    (tmp_path / "metrics.json").write_text(json.dumps({"dev": {"score": 0.5}}))
    resumed = compose_config(["taskset=pos", f"out_dir={tmp_path}", "resume=true"])
    assert jobs.run_job(resumed, lambda c: pytest.fail("a finished job must not run again")) == 0.5


def _pb_string(field: int, value: str) -> bytes:
    """A protobuf string field as W&B writes it into run-*.wandb (short values only)."""
    return bytes([field << 3 | 2, len(value)]) + value.encode()


def test_multirun_goes_on_after_a_failed_job_and_resume_retries_only_it(tmp_path, tiny_bert_dir):
    # Seed 2's extra evaluation file is missing: that job fails after training, with its W&B run open.
    extra = tmp_path / "extra"
    extra.mkdir()
    for seed in (1, 3):
        (extra / f"s{seed}.conllu").symlink_to(EXCERPT / "ud" / "dev.conllu")
    args = [
        "-m",
        "mode=stl",
        "taskset=pos",
        "seed=1,2,3",
        "trainer=smoke",
        "logger=wandb",
        f"encoder={tiny_bert_dir}",
        f"+tasks.pos.extra.again={extra}/s${{seed}}.conllu",
    ]
    proc = _cli(args, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    ok, bad = [sweep / "0_stl-pos-s1", sweep / "2_stl-pos-s3"], sweep / "1_stl-pos-s2"
    assert all((d / "metrics.json").is_file() for d in ok)
    failure = json.loads((bad / "failure.json").read_text())
    assert failure["type"] == "FileNotFoundError" and "s2.conllu" in failure["error"]
    assert "seed=2" in failure["overrides"] and not (bad / "metrics.json").exists()
    summary = json.loads((sweep / "failures.json").read_text())
    assert summary["n_failed"] == 1 and summary["failed"][0]["dir"] == bad.name
    assert sorted(summary["finished"]) == [d.name for d in ok]
    assert "1 job(s) failed, 2 finished" in log

    # One offline W&B run per job, grouped by sweep, the failed one marked failed (exit code 1).
    group = f"{sweep.parent.name}_{sweep.name}"
    for d, code in [(ok[0], 0), (bad, 1)]:
        (run,) = d.glob("wandb/offline-run-*")
        data = next(run.glob("run-*.wandb")).read_bytes()
        assert _pb_string(6, group) in data and _pb_string(7, "stl-pos") in data  # run_group, job_type
        assert f"got exitcode: {code}" in (run / "logs" / "debug.log").read_text()

    report = subprocess.run(
        [sys.executable, "-m", "mtlheads.report.cli", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert f"`{bad.name}`: failed: FileNotFoundError" in report.stdout

    # Same command with resume=true: finds the sweep dir, skips the finished jobs, retries the failed one.
    before = {d: ((d / "metrics.json").stat().st_mtime_ns, (d / "metrics.json").read_text()) for d in ok}
    (extra / "s2.conllu").symlink_to(EXCERPT / "ud" / "dev.conllu")
    proc = _cli([*args, "resume=true"], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert list((tmp_path / "multirun").glob("*/*")) == [sweep]
    assert log.count("already finished") == 2
    assert {
        d: ((d / "metrics.json").stat().st_mtime_ns, (d / "metrics.json").read_text()) for d in ok
    } == before
    assert (bad / "metrics.json").is_file() and not (bad / "failure.json").exists()
    assert json.loads((sweep / "failures.json").read_text())["n_failed"] == 0


def test_single_run_failure_exits_nonzero_and_resume_finds_the_default_dir(tmp_path, tiny_bert_dir):
    proc = _cli(["mode=stl", "taskset=ewt3", f"encoder={tiny_bert_dir}", "logger=none"], cwd=tmp_path)
    assert proc.returncode == 1 and "mode=stl trains one task" in proc.stderr
    (run,) = (tmp_path / "outputs").glob("*/*_stl-pos+ner+dep-s1")
    assert json.loads((run / "failure.json").read_text())["type"] == "ValueError"

    # resume=true without a dir: the newest outputs/*/*_<run name>; finished there, so nothing runs.
    (run / "metrics.json").write_text(json.dumps({"dev": {"score": 0.25}}))
    proc = _cli(["mode=stl", "taskset=ewt3", "logger=none", "resume=true"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already finished" in proc.stdout + proc.stderr
    assert list((tmp_path / "outputs").glob("*/*")) == [run]


def test_joblib_launcher_runs_jobs_in_parallel_and_records_failures(tmp_path, tiny_bert_dir):
    # taskset=ewt3 with mode=stl is refused at once: jobs 2 and 3 fail in their worker processes.
    proc = _cli(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "mode=stl",
            "taskset=pos,ewt3",
            "seed=1,2",
            "trainer=smoke",
            "logger=csv",
            f"encoder={tiny_bert_dir}",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in log
    sweep = tmp_path / "sweep"
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0_stl-pos-s1", "1_stl-pos-s2"]
    failed = sorted(p.parent.name for p in sweep.glob("*/failure.json"))
    assert failed == ["2_stl-pos+ner+dep-s1", "3_stl-pos+ner+dep-s2"]
    summary = json.loads((sweep / "failures.json").read_text())
    assert summary["n_failed"] == 2 and {f["type"] for f in summary["failed"]} == {"ValueError"}


def test_local_multirun_of_ddp_jobs_starts_each_jobs_own_ranks(tmp_path, tiny_bert_dir):
    # Lightning starts rank 1 by re-running the command line: it must be this job's, in this job's dir.
    proc = _cli(
        [
            "-m",
            "mode=stl",
            "taskset=pos",
            "seed=1,2",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2",
            "logger=csv",
            f"encoder={tiny_bert_dir}",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (sweep,) = (tmp_path / "multirun").glob("*/*")  # rank 1 did not start a sweep of its own
    for job in ("0_stl-pos-s1", "1_stl-pos-s2"):
        assert (sweep / job / "metrics.json").is_file() and (
            sweep / job / "train_ddp_process_1.log"
        ).is_file()
    assert not (tmp_path / "outputs").exists()
