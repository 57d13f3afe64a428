"""The fit step every training recipe calls: train, select the best dev checkpoint, test it.

:func:`fit` prints nothing and writes nothing but checkpoints (``<out>/checkpoints/best.ckpt``, weights
only, and ``last.ckpt`` for resuming); the recipe around it writes metrics, gates and tables. Super
Tickets and GradTS call it in loops, each time with a fresh model and its own ``out`` dir.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from mtlheads.build import instantiate_config, read_split
from mtlheads.checkpoint import BEST, CHECKPOINT_DIR, read_checkpoint, stamp
from mtlheads.errors import ConfigError
from mtlheads.model import MultiTaskModel
from mtlheads.training.checkpointing import AtomicCheckpointIO, LastCheckpoint, ResumeState, resume_checkpoint
from mtlheads.training.data import MultiTaskBatchSampler, TaskSplit, eval_loaders, train_loader


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        results: ``{"dev": {task: {metric: value}, "score": mean}, "test": ...}`` of the best checkpoint
            (test only for tasks with a test split), plus ``"extra": {task: {label: {metric: value}}}`` for
            the tasks' extra evaluation files (e.g. MNLI mismatched).
        best_checkpoint: path of ``best.ckpt`` (None if no dev evaluation ran).
        best_epoch: the epoch of the best checkpoint.
        epochs_run: epochs trained.
        train_seconds: wall time of training (dev evaluations included, final evaluation not).
        history: the dev results of every epoch.
    """

    results: dict
    best_checkpoint: Path | None
    best_epoch: int | None
    epochs_run: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)

    @property
    def dev_score(self) -> float:
        return float(self.results["dev"]["score"])


def evaluate(
    trainer: pl.Trainer, model: MultiTaskModel, loaders: Mapping[str, DataLoader], *, split: str, ckpt=None
) -> dict:
    """Evaluates ``model`` (the weights of ``ckpt`` if given) on one loader per task: metrics + ``score``."""
    model.eval_names = list(loaders)
    run = trainer.validate if split == "dev" else trainer.test
    run(model, dataloaders=list(loaders.values()), ckpt_path=ckpt, verbose=False)
    return {**model.results, "score": model.score(model.results)}


def fit(
    cfg: DictConfig,
    *,
    model: MultiTaskModel,
    data: Mapping[str, Mapping[str, TaskSplit]],
    tokenizer,
    out_dir: str | Path,
    logger=False,
    callbacks: Sequence[pl.Callback] = (),
) -> FitResult:
    """Trains ``model`` on ``data[task]["train"]``, keeps the best dev checkpoint, evaluates it.

    Args:
        cfg: the run config (``trainer``, ``batch``, ``sampler``, ``seed``, ``checkpoint``, ``patience``,
            ``resume``, ``tasks.<name>.extra``); saved in the checkpoints.
        model: built by :func:`mtlheads.build.build_model`; after ``fit`` it holds the best weights.
        data: per task, its ``TaskSplit``s by split name (``train`` and ``dev`` needed, ``test`` optional).
        tokenizer: the encoder's tokenizer.
        out_dir: where ``checkpoints/`` go.
        logger: a Lightning logger, or False.
        callbacks: more Lightning callbacks (e.g. the gate monitor).
    """
    out = Path(out_dir)
    stamp(model, cfg)
    model.eval_names = list(model.tasks)
    model.train()  # from_pretrained returns the encoder in eval mode (dropout off)
    best_ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=out / CHECKPOINT_DIR,
        filename=Path(BEST).stem,
        monitor="dev/score",
        mode="max",
        save_top_k=1,
        save_weights_only=True,
    )
    # last.ckpt's epoch-end save follows best.ckpt's: a kill between the two resumes from the older
    # last.ckpt, whose exact replay of the epoch rewrites the same best.ckpt.
    every = cfg.checkpoint.every_n_train_steps
    all_callbacks = [best_ckpt, LastCheckpoint(out / CHECKPOINT_DIR, every), *callbacks]
    if cfg.get("patience"):
        all_callbacks.append(
            pl.callbacks.EarlyStopping(monitor="dev/score", mode="max", patience=cfg.patience)
        )
    trainer: pl.Trainer = instantiate_config(
        cfg.trainer,
        "trainer",
        callbacks=all_callbacks,
        logger=logger,
        default_root_dir=str(out),
        plugins=[AtomicCheckpointIO()],
    )
    batch_sampler = train_batch_sampler(cfg, data, trainer)  # needs the trainer's world size and rank
    trainer.callbacks.insert(0, ResumeState(batch_sampler))
    train = train_loader(
        splits={n: d["train"] for n, d in data.items()},
        tasks=model.tasks,
        tokenizer=tokenizer,
        batch_sampler=batch_sampler,
    )

    def loaders(split: str) -> dict[str, DataLoader]:  # tasks without the split are left out (GLUE test)
        splits = {n: d[split] for n, d in data.items() if split in d}
        return eval_loaders(splits, tasks=model.tasks, tokenizer=tokenizer, batch=cfg.batch)

    dev = loaders("dev")
    model.eval_names = list(dev)
    last = resume_checkpoint(out / CHECKPOINT_DIR) if cfg.get("resume") else None
    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=train, val_dataloaders=list(dev.values()), ckpt_path=last)
    train_seconds = time.perf_counter() - started
    best = best_ckpt.best_model_path or None
    _check_trained(trainer, best)
    best_epoch = int(read_checkpoint(best)["epoch"]) if best else None

    # The best checkpoint with test-time decoding (e.g. MST for DEP), on dev, test and extra files.
    model.final_decode = True
    results = {
        s: evaluate(trainer, model, ls, split=s, ckpt=best) for s in ("dev", "test") if (ls := loaders(s))
    }
    for name, tc in cfg.tasks.items():
        for label, path in (tc.get("extra") or {}).items():
            split = read_split(model.tasks[name], path, tokenizer, key=f"tasks.{name}.extra.{label}")
            extra = eval_loaders({name: split}, tasks=model.tasks, tokenizer=tokenizer, batch=cfg.batch)
            scores = evaluate(trainer, model, extra, split="dev", ckpt=best)[name]
            results.setdefault("extra", {}).setdefault(name, {})[label] = scores
    return FitResult(
        results=results,
        best_checkpoint=Path(best) if best else None,
        best_epoch=best_epoch,
        epochs_run=trainer.current_epoch,
        train_seconds=train_seconds,
        history=list(model.history),
    )


def _check_trained(trainer: pl.Trainer, best: str | None) -> None:
    """Scores are only worth writing for a model that trained and was selected on a dev evaluation."""
    if trainer.global_step == 0:
        raise ConfigError(
            "the run trained no step (see trainer.max_epochs, trainer.max_steps, "
            "trainer.limit_train_batches, trainer.max_time): nothing to score",
            key="trainer",
        )
    if best is None:
        raise ConfigError(
            "no dev evaluation ran (see trainer.limit_val_batches, trainer.check_val_every_n_epoch against "
            "trainer.max_epochs): no best checkpoint to score",
            key="trainer",
        )


def train_batch_sampler(cfg: DictConfig, data: Mapping, trainer: pl.Trainer) -> MultiTaskBatchSampler:
    """This rank's training batches: groups of ``batch.shards`` same-task batches, one per rank and step.

    ``batch.max_tokens`` and ``batch.max_sentences`` bound one optimizer update over all ranks, so a
    mini-batch gets ``1 / (accumulate_grad_batches x world size)`` of them. ``batch.shards`` (null: the
    world size) above 1 on one process emulates that many DDP ranks: with ``accumulate_grad_batches`` equal
    to it, every update trains on the same batches as ``trainer=ddp trainer.devices=<shards>``.

    Raises:
        ConfigError: ``batch.shards`` is neither null nor the world size under DDP, or on one process is not
            a divisor of ``accumulate_grad_batches``.
    """
    world, accumulate = trainer.world_size, trainer.accumulate_grad_batches
    shards = cfg.batch.get("shards") or world
    if world > 1 and shards != world:
        raise ConfigError(
            f"batch.shards={shards} with {world} DDP processes: set batch.shards=null or {world}",
            key="batch.shards",
        )
    if world == 1 and accumulate % shards:
        raise ConfigError(
            f"batch.shards={shards} on one process emulates {shards} ranks: it needs "
            f"trainer.accumulate_grad_batches to be a multiple of it, got {accumulate}",
            key="batch.shards",
        )
    split = accumulate * world
    return MultiTaskBatchSampler(
        lengths={n: d["train"].lengths for n, d in data.items()},
        max_tokens=cfg.batch.max_tokens // split,
        max_sentences=max(cfg.batch.max_sentences // split, 1),
        sampler=instantiate(cfg.sampler),
        seed=cfg.seed,
        num_replicas=shards,
        rank=trainer.global_rank if world > 1 else None,  # None: one process trains every rank's batches
    )
