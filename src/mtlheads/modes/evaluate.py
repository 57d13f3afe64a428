"""mode=eval: evaluate a saved model on any file in each task's format.

``mtlheads mode=eval ckpt=<run dir or best.ckpt> eval_files.pos=<file.conllu>`` writes ``metrics.json``
with one entry per evaluated task and file. The tasks, vocabularies, encoder settings and head gate come
from the checkpoint (:func:`mtlheads.checkpoint.load_model`); ``ckpt`` may also be a ``mode=prune`` folder.
"""

from __future__ import annotations

import pytorch_lightning as pl
from omegaconf import DictConfig

from mtlheads.build import read_split
from mtlheads.checkpoint import load_model
from mtlheads.errors import ConfigError
from mtlheads.fit import evaluate
from mtlheads.launch.jobs import job_dir
from mtlheads.report.tables import score_table
from mtlheads.training.data import eval_loaders
from mtlheads.utils.io import atomic_write_json


def run(cfg: DictConfig) -> float:
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    given = {n: p for n, p in cfg.eval_files.items() if p}
    files = given or {n: train_cfg.tasks[n].test for n in model.tasks}
    unknown = sorted(set(files) - set(model.tasks))
    if unknown:
        raise ConfigError(
            f"eval_files names tasks {unknown} that checkpoint {cfg.ckpt} lacks; it has {list(model.tasks)}",
            key="eval_files",
        )
    model.final_decode = True
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=cfg.trainer.get("precision", "32-true"),  # as the fit's own dev/test passes ran
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=cfg.trainer.get("enable_progress_bar", True),
    )
    results = {}
    for name, path in files.items():
        split = read_split(model.tasks[name], path, tokenizer)
        loaders = eval_loaders({name: split}, tasks=model.tasks, tokenizer=tokenizer, batch=cfg.batch)
        scores = evaluate(trainer, model, loaders, split="test")[name]
        results[name] = {**scores, "file": str(path), "sentences": len(split.sentences)}
    out = job_dir(cfg)
    atomic_write_json(out / "metrics.json", {"mode": "eval", "checkpoint": str(cfg.ckpt), "test": results})
    numeric = {n: {k: v for k, v in r.items() if isinstance(v, float)} for n, r in results.items()}
    print(f"\n{score_table({'eval': numeric})}\n\noutput dir: {out}")
    return model.score(numeric)
