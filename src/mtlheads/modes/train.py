"""mode=stl, mode=mtl and mode=gate: one fit step, then the run's files.

STL is MTL with one task; mode=gate is MTL with ``heads=hard_concrete``. Writes to the run dir:
``config.yaml`` (resolved), ``metrics.json`` (dev + test per task, best epoch, per-epoch dev history),
``checkpoints/best.ckpt`` (weights only; ``last.ckpt``, for resuming, is dropped at the end unless
``checkpoint.keep_last=true``) and, for learnable gates, ``gates.pt`` and ``gates/<step>.pt``.
"""

from __future__ import annotations

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from mtlheads.build import build_encoder, build_logger, build_model, build_tasks, close_logger, read_task_data
from mtlheads.checkpoint import drop_last_checkpoint
from mtlheads.fit import fit
from mtlheads.heads.monitor import GateMonitor
from mtlheads.heads.tickets import shared_usage
from mtlheads.launch.jobs import job_dir
from mtlheads.report.tables import score_table
from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text


def run(cfg: DictConfig) -> float:
    """Trains, selects and tests; returns the best dev score (what a Hydra sweeper would maximise)."""
    out = job_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    main_rank = rank_zero_only.rank == 0  # DDP: Lightning re-runs this command for ranks > 0
    pl.seed_everything(cfg.seed, workers=True)

    tasks = build_tasks(cfg, single_task=cfg.mode.single_task)
    encoder, tokenizer = build_encoder(cfg.encoder)
    data = read_task_data(cfg, tasks, tokenizer)
    model = build_model(cfg, tasks, encoder)
    if main_rank:  # only once the data and the model are good: a bad input leaves an earlier run's file
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    learnable = model.heads is not None and model.heads.learnable
    callbacks = [GateMonitor(model.heads, out / "gates")] if learnable else []
    logger = build_logger(cfg, out)
    try:
        result = fit(
            cfg, model=model, data=data, tokenizer=tokenizer, out_dir=out, logger=logger, callbacks=callbacks
        )
    finally:
        close_logger(logger)

    results = dict(result.results)
    if learnable:  # the best checkpoint's gates (the model holds them after its evaluation)
        results["gates"] = model.heads.summary()
    if cfg.get("tickets"):  # ticket sharing: the encoder share each task's super ticket keeps, and the union
        results["parameter_usage"] = shared_usage(model.heads, model.encoder.model)
    metrics = {
        "mode": cfg.mode.name,
        "tasks": list(tasks),
        "encoder": cfg.encoder.name,
        "seed": cfg.seed,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.train_seconds, 1),
        **results,
        "history": result.history,
        "checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
    }
    if main_rank:  # every DDP rank evaluated the whole dev and test sets: same results
        if learnable:
            atomic_save(model.heads.eval_values().cpu(), out / "gates.pt")
        atomic_write_json(out / "metrics.json", metrics)
        drop_last_checkpoint(out, keep_last=cfg.checkpoint.get("keep_last", False))
        table = score_table({s: results[s] for s in ("dev", "test") if s in results})
        print(f"\n{table}\n\nbest epoch: {result.best_epoch}   output dir: {out}")
    return result.dev_score
