"""Kill -9 and resume the real ``mtlheads`` command; a NaN loss stops a run, the last good checkpoint stays.

Tiny random BERT on the shipped EWT excerpt, dropout on (BERT's and the encoder's word dropout, and the
DEP decoder's): only restored RNG states make a resumed run match an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import compose_config, start_cli

from mtlheads.modes import train
from mtlheads.tasks.pos import PosTask
from mtlheads.training.checkpointing import ResumeState

# 4 training batches per epoch (trainer=smoke): last.ckpt after steps 2 and 6 (mid-epoch) and at epoch ends.
ARGS = [
    "mode=mtl",
    "taskset=[pos,dep]",
    "trainer=smoke",
    "trainer.max_epochs=2",
    "checkpoint.every_n_train_steps=2",
    "batch.max_tokens=1000",
    "logger=none",
]


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    log = open(cwd / "log.txt", "a")  # a file, not a pipe: an unread pipe could block the run
    return start_cli(args, cwd, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, cwd: Path) -> None:
    assert proc.wait(timeout=900) == 0, (cwd / "log.txt").read_text()[-3000:]


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], cwd: Path) -> None:
    """``kill -9`` the run as soon as ``ready()`` holds (polled every 10 ms)."""
    deadline = time.monotonic() + 900
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run ended before it could be killed:\n" + (cwd / "log.txt").read_text()[-3000:])
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _computed(metrics: dict) -> dict:
    """Every number the run computed (wall-clock seconds and paths differ between runs)."""
    keep = ("dev", "test", "best_epoch", "epochs_run")
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return {**{k: metrics[k] for k in keep}, "history": history}


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_results(tmp_path, tiny_bert_dir):
    args = [*ARGS, f"encoder={tiny_bert_dir}"]
    reference = _start([*args, f"out_dir={tmp_path / 'reference'}"], tmp_path)  # runs alongside

    # Killed just after the step-6 save (step 2 of epoch 1), the second last.ckpt written after best.ckpt
    # (the first is epoch 0's end): the resume restores epoch 0's history and best score too.
    run = tmp_path / "run"
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    writes = set()

    def second_write_after_best() -> bool:
        if best.exists() and last.exists() and (mtime := last.stat().st_mtime_ns) > best.stat().st_mtime_ns:
            writes.add(mtime)
        return len(writes) == 2

    _kill_when(_start([*args, f"out_dir={run}"], tmp_path), second_write_after_best, tmp_path)
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 6 and ckpt[ResumeState.KEY]["sampler"] == {"epoch": 1, "start": 2}
    assert [h["epoch"] for h in ckpt[ResumeState.KEY]["history"]] == [0]
    assert not (run / "metrics.json").exists()

    _finish(_start([*args, f"out_dir={run}", "resume=true"], tmp_path), tmp_path)
    _finish(reference, tmp_path)
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert len(got["history"]) == 2
    assert _computed(got) == _computed(expected)  # exactly: same floats, no tolerance


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, tiny_bert_dir, monkeypatch):
    cfg = compose_config(
        [
            "mode=stl",
            "taskset=pos",
            f"encoder.name={tiny_bert_dir}",
            "trainer=smoke",  # 4 training batches
            "checkpoint.every_n_train_steps=2",
            "batch.max_tokens=1000",
            "logger=none",
            f"out_dir={tmp_path}",
        ]
    )
    loss, calls = PosTask.loss, []

    def nan_at_step_3(self, *args):
        calls.append(1)
        return loss(self, *args) * (float("nan") if len(calls) == 4 else 1.0)

    monkeypatch.setattr(PosTask, "loss", nan_at_step_3)
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan for task 'pos' at step 3, batch 3"):
        train.run(cfg)
    assert not (tmp_path / "metrics.json").exists()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())

    # The last good checkpoint resumes: the run finishes from step 2.
    monkeypatch.undo()
    cfg.resume = True
    train.run(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and len(metrics["history"]) == 1
