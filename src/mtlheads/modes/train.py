"""mode=stl and mode=mtl: train on the training splits, select on dev, test the best checkpoint.

STL is MTL with one task. Writes to the run dir: ``config.yaml`` (resolved), ``metrics.json``
(dev + test per task, best epoch, per-epoch dev history), ``checkpoints/best.ckpt`` and
``checkpoints/last.ckpt`` (what ``resume=true`` continues from).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from mtlheads.build import build_encoder, build_logger, build_tasks, close_logger, read_split, read_task_data
from mtlheads.heads.l0 import build_l0
from mtlheads.heads.monitor import GateMonitor
from mtlheads.model import MultiTaskModel
from mtlheads.report.tables import score_table
from mtlheads.training.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    ResumeState,
    resume_checkpoint,
)
from mtlheads.training.data import MultiTaskBatchSampler, eval_loader, train_loader
from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text

log = logging.getLogger("mtlheads")


def output_dir(cfg: DictConfig) -> Path:
    """The Hydra run dir (or ``cfg.out_dir`` when called outside Hydra, e.g. from tests)."""
    if cfg.get("out_dir"):
        return Path(cfg.out_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def run(cfg: DictConfig) -> float:
    """Trains, selects and tests; returns the best dev score (what a Hydra sweeper would maximise)."""
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # DDP: Lightning re-runs this command for ranks > 0 (LOCAL_RANK set)
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)

    tasks = build_tasks(cfg, single_task=cfg.mode.single_task)
    encoder, tokenizer = build_encoder(cfg.encoder)
    data = read_task_data(cfg, tasks, tokenizer)

    balancer = instantiate(cfg.balancer) if cfg.get("balancer") else None
    l0 = build_l0(cfg.mode.get("gate"), encoder, list(tasks))  # mode=gate: hard-concrete head gates
    model = MultiTaskModel(
        encoder=encoder, tasks=tasks, optim=instantiate(cfg.optim), balancer=balancer, l0=l0
    )
    model.run_config = OmegaConf.to_container(cfg, resolve=True)
    model.eval_names = list(tasks)
    model.train()  # from_pretrained returns the encoder in eval mode (dropout off)

    def loaders(split: str) -> dict[str, DataLoader]:
        """One loader per task that has ``split`` (GLUE tasks have no labelled test split)."""
        return {
            n: eval_loader(
                task=n,
                split=d[split],
                tasks=tasks,
                tokenizer=tokenizer,
                max_tokens=cfg.batch.eval_max_tokens,
                max_sentences=cfg.batch.max_sentences,
            )
            for n, d in data.items()
            if split in d
        }

    def evaluate(split: str, named_loaders: dict[str, DataLoader], ckpt: str | None) -> dict:
        model.eval_names = list(named_loaders)
        run_eval = trainer.validate if split == "dev" else trainer.test
        run_eval(model, dataloaders=list(named_loaders.values()), ckpt_path=ckpt, verbose=False)
        return {**model.results, "score": model.score(model.results)}

    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor="dev/score", mode="max", save_top_k=1
    )
    # last.ckpt's epoch-end save follows best.ckpt's: a kill between the two resumes from the older
    # last.ckpt, whose exact replay of the epoch rewrites the same best.ckpt.
    last_ckpt = LastCheckpoint(out / "checkpoints", cfg.checkpoint.every_n_train_steps)
    callbacks: list[pl.Callback] = [checkpoint, last_ckpt]
    if l0 is not None:
        callbacks.append(GateMonitor(l0, out / "gates"))
    if cfg.get("patience"):
        callbacks.append(pl.callbacks.EarlyStopping(monitor="dev/score", mode="max", patience=cfg.patience))
    logger = build_logger(cfg, out)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(out),
        plugins=[AtomicCheckpointIO()],
    )
    batch_sampler = train_batch_sampler(cfg, data, trainer)  # needs the trainer's world size and rank
    trainer.callbacks.insert(0, ResumeState(batch_sampler))
    train = train_loader(
        splits={n: d["train"] for n, d in data.items()},
        tasks=tasks,
        tokenizer=tokenizer,
        batch_sampler=batch_sampler,
    )
    try:
        started = time.perf_counter()
        dev_loaders = loaders("dev")
        model.eval_names = list(dev_loaders)
        last = resume_checkpoint(out / "checkpoints") if cfg.resume else None
        trainer.fit(
            model, train_dataloaders=train, val_dataloaders=list(dev_loaders.values()), ckpt_path=last
        )
        train_seconds = time.perf_counter() - started
        best = checkpoint.best_model_path
        best_epoch = int(torch.load(best, map_location="cpu", weights_only=False)["epoch"]) if best else None

        # Final evaluation of the best checkpoint with test-time decoding (e.g. Eisner), on dev and test,
        # and on each task's extra evaluation files (e.g. MNLI's mismatched dev set).
        model.final_decode = True
        results = {s: evaluate(s, ls, best or None) for s in ("dev", "test") if (ls := loaders(s))}
        for name, tc in cfg.tasks.items():
            for label, path in (tc.get("extra") or {}).items():
                split = read_split(tasks[name], path, tokenizer)
                loader = eval_loader(
                    task=name,
                    split=split,
                    tasks=tasks,
                    tokenizer=tokenizer,
                    max_tokens=cfg.batch.eval_max_tokens,
                    max_sentences=cfg.batch.max_sentences,
                )
                scores = evaluate("dev", {name: loader}, best or None)[name]
                results.setdefault("extra", {}).setdefault(name, {})[label] = scores
        if l0 is not None:  # the best checkpoint's gates (the model holds them after its evaluation)
            results["gates"] = l0.summary()
            if trainer.is_global_zero:
                atomic_save(l0.gate.deterministic().detach().cpu(), out / "gates.pt")
    finally:
        close_logger(logger)

    metrics = {
        "mode": cfg.mode.name,
        "tasks": list(tasks),
        "encoder": cfg.encoder.name,
        "seed": cfg.seed,
        "best_epoch": best_epoch,
        "epochs_run": trainer.current_epoch,
        "train_seconds": round(train_seconds, 1),
        **results,
        "history": model.history,
        "checkpoint": best,
    }
    if trainer.is_global_zero:  # every DDP rank evaluated the whole dev and test sets: same results
        atomic_write_json(out / "metrics.json", metrics)
        table = score_table({s: results[s] for s in ("dev", "test") if s in results})
        print(f"\n{table}\n\nbest epoch: {best_epoch}   output dir: {out}")
    return float(results["dev"]["score"])


def train_batch_sampler(cfg: DictConfig, data: dict, trainer: pl.Trainer) -> MultiTaskBatchSampler:
    """This rank's training batches: groups of ``batch.shards`` same-task batches, one per rank and step.

    ``batch.max_tokens`` and ``batch.max_sentences`` bound one optimizer update over all ranks, so a
    mini-batch gets ``1 / (accumulate_grad_batches x world size)`` of them. ``batch.shards`` (null: the
    world size) above 1 on one process emulates that many DDP ranks: with ``accumulate_grad_batches`` equal
    to it, every update trains on the same batches as ``trainer=ddp trainer.devices=<shards>``.

    Raises:
        ValueError: ``batch.shards`` is neither null nor the world size under DDP, or on one process is not
            a divisor of ``accumulate_grad_batches``.
    """
    world, accumulate = trainer.world_size, trainer.accumulate_grad_batches
    shards = cfg.batch.get("shards") or world
    if world > 1 and shards != world:
        raise ValueError(
            f"batch.shards={shards} with {world} DDP processes: set batch.shards=null or {world}"
        )
    if world == 1 and accumulate % shards:
        raise ValueError(
            f"batch.shards={shards} on one process emulates {shards} ranks: it needs "
            f"trainer.accumulate_grad_batches to be a multiple of it, got {accumulate}"
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
