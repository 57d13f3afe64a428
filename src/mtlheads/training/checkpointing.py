"""Checkpoints a run can be killed (``kill -9``) at any point and resumed from, bit for bit.

* :class:`AtomicCheckpointIO` writes a temp file in the same directory, fsyncs it and renames it over the
  target, so an interrupted write never leaves a truncated ``last.ckpt`` that a resume would trust. It also
  loads every checkpoint Lightning reads (the resume, the best checkpoint's evaluation) weights-only, like
  :func:`mtlheads.checkpoint.read_checkpoint`; a ``last.ckpt`` that cannot be read (damaged after it was
  written, e.g. by a copy cut short) is an error that says which file to delete.
* :class:`LastCheckpoint` writes ``last.ckpt`` every N optimizer steps and at every epoch end.
* :class:`ResumeState` adds to every checkpoint what Lightning does not save: the RNG states, the batch
  sampler's position in the epoch and the model's per-epoch dev ``history``.

Lightning 2.6 resuming mid-epoch (``loops/fit_loop.py``, ``loops/training_epoch_loop.py``): from a checkpoint
saved in ``on_train_batch_end`` after ``k`` batches it continues with ``batch_idx = k`` and counts the
epoch as ``k`` batches done (the fetcher's ``fetched`` starts at ``k``), but it creates a fresh iterator
over a non-stateful loader, which would replay the epoch from its first batch (it warns "your dataloader
is not resumable"). The batch sampler therefore skips the ``k`` batches already trained on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.trainer.states import TrainerFn

from mtlheads.errors import CheckpointError
from mtlheads.training.data import MultiTaskBatchSampler
from mtlheads.utils.io import atomic_save, load_torch_file

log = logging.getLogger("mtlheads")

LAST = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temp file in the target's directory, flush + fsync, then ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own writer
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = atomic_save(checkpoint, path)
        _fsync_dir(path.parent)  # makes the rename itself durable (power loss, not just a killed process)

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Weights-only unless the run trusts its files (``trust_checkpoint``), whatever Lightning asks."""
        if "://" in str(path):  # remote storage: Lightning's own reader, still weights-only
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        try:
            checkpoint = load_torch_file(path, map_location=map_location)
        except CheckpointError as e:
            if Path(path).name != LAST:
                raise
            raise CheckpointError(
                f"{e}. resume=true cannot continue from it: delete {path} to start this run afresh "
                "(or restore the file)"
            ) from None
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"{path}: not a checkpoint (a {type(checkpoint).__name__}, not a dict)")
        return checkpoint


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some platforms cannot open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def resume_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """``ckpt_dir/last.ckpt`` if it exists, else None; removes temp files a killed write left behind."""
    ckpt_dir = Path(ckpt_dir)
    for tmp in ckpt_dir.glob(".*.ckpt.*.tmp"):
        tmp.unlink(missing_ok=True)
    last = ckpt_dir / LAST
    if last.is_file():
        log.info("resume: continuing from %s", last)
        return last
    log.info("resume: no %s, starting afresh", last)
    return None


def _epoch_done(trainer: pl.Trainer) -> bool:
    """True once the current epoch's last training batch has been trained on."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.processed >= trainer.num_training_batches


class LastCheckpoint(Checkpoint):
    """Overwrites ``dirpath/last.ckpt`` every ``every_n_train_steps`` optimizer steps and at every epoch end.

    The epoch-end save comes in ``on_train_epoch_end``, after the dev evaluation and the best-checkpoint
    update, so a resume from it starts the next epoch. Step saves skip an epoch's last batch: Lightning
    would resume that checkpoint as if the epoch had ended and never run the epoch's dev evaluation.

    Args:
        dirpath: the checkpoint directory.
        every_n_train_steps: optimizer steps between saves; None or 0: only at epoch ends.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_train_steps: int | None = None):
        self.path = Path(dirpath) / LAST
        self.every = every_n_train_steps or 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        stepped = done % trainer.accumulate_grad_batches == 0  # never mid-accumulation: grads are not saved
        if self.every > 0 and stepped and trainer.global_step % self.every == 0 and not _epoch_done(trainer):
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


class ResumeState(pl.Callback):
    """Puts RNG states, the sampler position and the dev history into every checkpoint; restores them.

    Also refuses to save non-finite weights (a NaN gradient with a finite loss), so that the checkpoint a
    resume would trust stays the last good one.

    Args:
        batch_sampler: the train loader's batch sampler.
    """

    KEY = "mtlheads_resume"

    def __init__(self, batch_sampler: MultiTaskBatchSampler):
        self.batch_sampler = batch_sampler
        self._rng: dict | None = None  # restored RNG states, set at the first training batch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning 2.6 calls set_epoch on loader.sampler and loader.batch_sampler.sampler, never on the
        # batch sampler itself: without this every epoch would replay epoch 0's order.
        self.batch_sampler.set_epoch(trainer.current_epoch)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        for name, value in checkpoint["state_dict"].items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise FloatingPointError(f"non-finite weights in '{name}' at step {trainer.global_step}")
        # Batches trained on come from the loop's progress, not from how many the sampler yielded
        # (a loader may fetch ahead). A finished epoch resumes with the next one, whole.
        consumed = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        sampler = None if _epoch_done(trainer) else self.batch_sampler.state_dict(consumed)
        checkpoint[self.KEY] = {"rng": rng_states(), "sampler": sampler, "history": list(pl_module.history)}

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        # Lightning calls this before it creates the train iterator for the resumed epoch, and also when
        # validate/test load a checkpoint (e.g. best.ckpt): that must not replace the run's history.
        state = checkpoint.get(self.KEY)
        if state is None or trainer.state.fn != TrainerFn.FITTING:
            return
        if state["sampler"] is not None:
            self.batch_sampler.load_state_dict(state["sampler"])
            # Lightning warns that a mid-epoch resume replays the epoch; the sampler's skip prevents that.
            warnings.filterwarnings("ignore", message=".*your dataloader is not resumable", category=Warning)
        pl_module.history = list(state["history"])
        self._rng = state["rng"]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        # Set here rather than at load time: Lightning may draw random numbers in between.
        if self._rng is not None:
            set_rng_states(self._rng)
            self._rng = None


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    random.setstate(states["python"])
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
