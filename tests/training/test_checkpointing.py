"""Atomic checkpoint writes, and exact resumes of a toy model trained on the real batch sampler.

The toy runs are crashed (an exception, in-process) at chosen points; ``test_resume.py`` kills the real CLI.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mtlheads.training.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    ResumeState,
    resume_checkpoint,
    rng_states,
    set_rng_states,
)
from mtlheads.training.data import MultiTaskBatchSampler
from mtlheads.training.sampler import TemperatureSampler

# ---- atomic writes ------------------------------------------------------------------------------


def test_atomic_save_replaces_the_file_and_leaves_no_temp(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    io.save_checkpoint({"step": 2}, path)
    assert io.load_checkpoint(path) == {"step": 2}
    assert os.listdir(tmp_path) == ["last.ckpt"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


@pytest.mark.parametrize("failure", ["pickling", "fsync"])
def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    if failure == "pickling":  # torch.save dies half-way through writing the new bytes
        new, error = {"step": 2, "bad": lambda: None}, Exception
    else:  # the new bytes are written but the process dies before the rename

        def crash(fd):
            raise OSError("disk gone")

        monkeypatch.setattr(os, "fsync", crash)
        new, error = {"step": 2}, OSError
    with pytest.raises(error):
        io.save_checkpoint(new, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_resume_checkpoint_removes_temp_files_of_a_killed_write(tmp_path):
    assert resume_checkpoint(tmp_path) is None
    (tmp_path / ".last.ckpt.x1y2.tmp").write_bytes(b"half a checkpoint")  # kill -9 during a save
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert resume_checkpoint(tmp_path) == tmp_path / "last.ckpt"
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_rng_states_survive_a_weights_only_load(tmp_path):
    torch.save(rng_states(), tmp_path / "rng.pt")
    before = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1)) == before


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- exact resume of a toy model ----------------------------------------------------------------

X = torch.randn(24, 4, generator=torch.Generator().manual_seed(0))
EPOCHS, EVERY = 3, 2  # 6 batches per epoch: last.ckpt at steps 2 and 4 of each epoch, and at its end


VAL = DataLoader(TensorDataset(X[:8]), batch_size=4)


class Crash(Exception):
    """Carries the crashed run's ``Toy.seen``."""


class Toy(pl.LightningModule):
    """Dropout makes the weights depend on the torch RNG; ``seen`` records every batch trained on."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
        self.history: list[dict] = []
        self.seen: list[tuple] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch_idx, *batch.tolist()))
        return (self.net(X[batch]) - 1).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val", (self.net(batch[0]) - 1).pow(2).mean())

    def on_validation_epoch_end(self):
        if self.trainer.state.fn == "fit":  # as MultiTaskModel does
            self.history.append({"epoch": self.current_epoch, "w": self.net[0].weight.sum().item()})

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)


class CrashAt(pl.Callback):
    """Raises before training step ``step``, or in epoch ``val_epoch``'s dev evaluation."""

    def __init__(self, step: int | None = None, val_epoch: int | None = None):
        self.step, self.val_epoch = step, val_epoch

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise Crash(trainer.lightning_module.seen)

    def on_validation_batch_start(self, trainer, *args):
        if trainer.current_epoch == self.val_epoch:
            raise Crash(trainer.lightning_module.seen)


def _sampler() -> MultiTaskBatchSampler:
    return MultiTaskBatchSampler(
        lengths={"a": [10] * 12, "b": [10] * 12},  # 3 batches of 4 per task
        max_tokens=40,
        max_sentences=64,
        sampler=TemperatureSampler(),
        seed=0,
    )


def _fit(root, crash: CrashAt | None = None, resume: bool = False) -> Toy:
    """One run as ``modes/train.py`` does it (seed, model, sampler, callbacks, fit)."""
    pl.seed_everything(0)
    model, sampler = Toy(), _sampler()
    train = DataLoader(
        {(t, i): i + 12 * (t == "b") for t in "ab" for i in range(12)},  # (task, index) -> row of X
        batch_sampler=sampler,
        collate_fn=torch.tensor,
        generator=torch.Generator().manual_seed(0),
    )
    ckpts = root / "checkpoints"
    callbacks = [
        pl.callbacks.ModelCheckpoint(dirpath=ckpts, filename="best", monitor="val", save_top_k=1),
        LastCheckpoint(ckpts, EVERY),
        ResumeState(sampler),
        *([crash] if crash else []),
    ]
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        default_root_dir=root,
    )
    trainer.fit(model, train, VAL, ckpt_path=resume_checkpoint(ckpts) if resume else None)
    return model


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Toy:
    return _fit(tmp_path_factory.mktemp("reference"))


@pytest.mark.parametrize(
    ("crash", "resumed_at"),
    [
        (CrashAt(step=3), (2, {"epoch": 0, "start": 2})),  # mid-epoch
        # Step 6 ends epoch 0: its step save is skipped, so a crash in the dev evaluation resumes at step 4.
        (CrashAt(val_epoch=0), (4, {"epoch": 0, "start": 4})),
        (CrashAt(step=6), (6, None)),  # epoch boundary: the epoch-end checkpoint
        (CrashAt(step=9), (8, {"epoch": 1, "start": 2})),
    ],
    ids=["mid-epoch-0", "in-dev-eval", "epoch-boundary", "mid-epoch-1"],
)
def test_crash_and_resume_trains_exactly_like_an_uninterrupted_run(tmp_path, reference, crash, resumed_at):
    with pytest.raises(Crash) as crashed:
        _fit(tmp_path, crash)
    crashed_seen = crashed.value.args[0]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (ckpt["global_step"], ckpt[ResumeState.KEY]["sampler"]) == resumed_at

    resumed = _fit(tmp_path, resume=True)
    # The batches trained before the checkpoint, then those of the resumed run, are the reference's.
    assert crashed_seen[: ckpt["global_step"]] + resumed.seen == reference.seen
    assert resumed.history == reference.history
    for (name, a), b in zip(resumed.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_every_epoch_has_its_own_batch_order(reference):
    per_epoch = [[s[2:] for s in reference.seen if s[0] == e] for e in range(EPOCHS)]
    assert len(per_epoch[0]) == 6 and per_epoch[0] != per_epoch[1] != per_epoch[2]


def test_evaluating_a_checkpoint_leaves_the_history_and_the_sampler_alone(tmp_path):
    with pytest.raises(Crash):
        _fit(tmp_path, CrashAt(step=9))  # last.ckpt: mid-epoch 1, with epoch 0's history
    model, sampler = Toy(), _sampler()
    trainer = pl.Trainer(accelerator="cpu", callbacks=[ResumeState(sampler)], logger=False)
    trainer.validate(model, VAL, ckpt_path=tmp_path / "checkpoints" / "last.ckpt", verbose=False)
    assert model.history == [] and (sampler.epoch, sampler.start) == (0, 0)
