"""Lightning DDP (2 CPU processes, gloo) against one process emulating its 2 ranks (``batch.shards=2``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import cli_env, compose_config, start_cli

from mtlheads.fit import train_batch_sampler
from mtlheads.training.data import TaskSplit


@pytest.fixture(scope="module")
def bert_no_dropout(tiny_bert_dir, tmp_path_factory) -> str:
    """The tiny random BERT with its dropout off: each DDP rank has its own dropout RNG stream."""
    path = tmp_path_factory.mktemp("tiny_bert_no_dropout")
    shutil.copytree(tiny_bert_dir, path, dirs_exist_ok=True)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def _sampler(overrides: list[str], world_size: int, rank: int, accumulate: int):
    trainer = SimpleNamespace(world_size=world_size, global_rank=rank, accumulate_grad_batches=accumulate)
    data = {"pos": {"train": TaskSplit(sentences=[], lengths=[20] * 100)}}
    return train_batch_sampler(compose_config(["taskset=pos", *overrides]), data, trainer)


def test_each_rank_gets_its_share_of_the_batch_limits_and_its_rank():
    ddp = _sampler([], world_size=2, rank=1, accumulate=1)
    one = _sampler(["batch.shards=2"], world_size=1, rank=0, accumulate=2)
    assert (ddp.num_replicas, ddp.rank, one.num_replicas, one.rank) == (2, 1, 2, None)
    assert ddp.max_tokens == one.max_tokens == 3200 and ddp.max_sentences == one.max_sentences == 32
    plain = _sampler([], world_size=1, rank=0, accumulate=4)
    assert (plain.num_replicas, plain.max_tokens, plain.max_sentences) == (1, 1600, 16)


def test_shards_other_than_the_world_size_are_refused():
    with pytest.raises(ValueError, match="batch.shards=3 with 2 DDP processes"):
        _sampler(["batch.shards=3"], world_size=2, rank=0, accumulate=1)
    with pytest.raises(ValueError, match="batch.shards=2 on one process"):
        _sampler(["batch.shards=2"], world_size=1, rank=0, accumulate=1)


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return start_cli(
        args,
        cwd,
        env=cli_env(OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the DDP child process too can be killed on a timeout
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        output, _ = proc.communicate()
        pytest.fail(f"timed out after {timeout} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output


def test_ddp_on_two_cpu_processes_matches_one_process_emulating_two_ranks(tmp_path, bert_no_dropout):
    """Same batches per optimizer step, same weights and dev/test metrics.

    DDP: 2 ranks x 4 mini-batches (4 steps, each rank 1/2 of ``batch.*``). Emulation: 8 mini-batches with
    ``accumulate_grad_batches=2`` (4 steps, same mini-batches, rank 0's then rank 1's). Dropout is off
    (encoder, word dropout, the DEP MLPs), as each DDP rank would draw its own masks.

    Tolerances: the runs can differ only by the floating-point order of the gradient sums (DDP's
    all-reduce mean vs accumulating loss/2 twice). Measured: bitwise-equal weights with one thread per
    process (as here), 2.5e-7 with two intra-op threads in the single process. ``atol=1e-4`` leaves room
    for AdamW amplifying such noise on near-zero gradients. Metrics come from argmax decisions (equal
    in every measured run); ``abs=2e-3`` allows a prediction or two flipped on a near-tie.
    """
    common = [
        "mode=mtl",
        "taskset=[pos,dep]",  # two decoders, one used per step: DDP needs find_unused_parameters
        "+tasks.dep.task.dropout=0",
        f"encoder={bert_no_dropout}",
        "encoder.word_dropout=0",
        "logger=csv",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "+trainer.limit_val_batches=3",
        "+trainer.limit_test_batches=3",
    ]
    ddp = _start([*common, "trainer=ddp", "trainer.devices=2", "+trainer.limit_train_batches=4"], tmp_path)
    one = _start(
        [
            *common,
            "batch.shards=2",
            "trainer.accumulate_grad_batches=2",
            "+trainer.limit_train_batches=8",
            f"hydra.run.dir={tmp_path / 'one'}",
        ],
        tmp_path,
    )
    ddp_output, _ = _finish(ddp), _finish(one)

    # Rank 1 ran in rank 0's Hydra run dir; only rank 0 wrote config.yaml and metrics.json and printed.
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert (run_dir / "train_ddp_process_1.log").is_file() and (run_dir / "config.yaml").is_file()
    assert ddp_output.count("best epoch:") == 1

    a, b = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "one"))
    for split in ("dev", "test"):
        for task in ("pos", "dep"):
            assert a[split][task] == pytest.approx(b[split][task], abs=2e-3), (split, task)
    ca, cb = (torch.load(m["checkpoint"], map_location="cpu", weights_only=False) for m in (a, b))
    assert ca["global_step"] == cb["global_step"] == 4
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    for name, weight in ca["state_dict"].items():
        torch.testing.assert_close(weight, cb["state_dict"][name], atol=1e-4, rtol=0, msg=name)
