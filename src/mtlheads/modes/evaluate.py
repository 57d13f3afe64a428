"""mode=eval: evaluate a saved checkpoint on any file in each task's format.

``mtlheads mode=eval ckpt=<run>/checkpoints/best.ckpt eval_files.pos=<file.conllu>`` writes
``metrics.json`` with one entry per evaluated task and file. The tasks, their vocabularies and the
encoder settings come from the checkpoint; the encoder weights from its state dict. ``ckpt`` may also be
a folder written by ``mode=prune`` (a physically pruned model).
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mtlheads.build import build_encoder, build_tasks, read_split
from mtlheads.heads.l0 import build_l0
from mtlheads.model import MultiTaskModel, OptimConfig
from mtlheads.modes.train import output_dir
from mtlheads.report.tables import score_table
from mtlheads.training.data import eval_loader
from mtlheads.utils.io import atomic_write_json


def load_checkpoint(path: str) -> tuple[MultiTaskModel, object, DictConfig]:
    """Rebuilds the model saved by mode=stl/mtl: returns (model in eval mode, tokenizer, training config)."""
    if not path or not Path(path).is_file():
        raise FileNotFoundError(f"config key 'ckpt': no checkpoint file at {path!r}")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "mtlheads_config" not in ckpt:
        raise ValueError(f"{path}: not an mtlheads checkpoint (no 'mtlheads_config' entry)")
    train_cfg = OmegaConf.create(ckpt["mtlheads_config"])
    tasks = build_tasks(train_cfg)
    for name, task in tasks.items():
        task.load_vocab_state(ckpt["mtlheads_vocab"][name])
    encoder, tokenizer = build_encoder(train_cfg.encoder)
    l0 = build_l0(train_cfg.mode.get("gate"), encoder, list(tasks))  # a gated run's gates are in its weights
    model = MultiTaskModel(encoder=encoder, tasks=tasks, optim=OptimConfig(), l0=l0)
    model.load_state_dict(ckpt["state_dict"])
    model.run_config = ckpt["mtlheads_config"]
    return model.eval(), tokenizer, train_cfg


def load_model(path: str) -> tuple[MultiTaskModel, object, DictConfig]:
    """A training checkpoint file, or a ``mode=prune`` folder: (model in eval mode, tokenizer, config)."""
    if path and (Path(path) / "model.pt").is_file():
        from mtlheads.modes.prune import load_pruned_model  # prune imports this module

        model, tokenizer = load_pruned_model(path)
        return model, tokenizer, OmegaConf.create(model.run_config)
    return load_checkpoint(path)


def run(cfg: DictConfig) -> float:
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    given = {n: p for n, p in cfg.eval_files.items() if p}
    files = given or {n: train_cfg.tasks[n].test for n in model.tasks}
    unknown = sorted(set(files) - set(model.tasks))
    if unknown:
        raise ValueError(
            f"eval_files names tasks {unknown} that checkpoint {cfg.ckpt} lacks; it has {list(model.tasks)}"
        )
    model.final_decode = True
    trainer = pl.Trainer(
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=cfg.trainer.get("enable_progress_bar", True),
    )
    results = {}
    for name, path in files.items():
        split = read_split(model.tasks[name], path, tokenizer)
        model.eval_names = [name]
        loader = eval_loader(
            task=name,
            split=split,
            tasks=model.tasks,
            tokenizer=tokenizer,
            max_tokens=cfg.batch.eval_max_tokens,
            max_sentences=cfg.batch.max_sentences,
        )
        trainer.test(model, dataloaders=[loader], verbose=False)
        results[name] = {**model.results[name], "file": str(path), "sentences": len(split.sentences)}
    out = output_dir(cfg)
    atomic_write_json(out / "metrics.json", {"mode": "eval", "checkpoint": str(cfg.ckpt), "test": results})
    numeric = {n: {k: v for k, v in r.items() if isinstance(v, float)} for n, r in results.items()}
    print(f"\n{score_table({'eval': numeric})}\n\noutput dir: {out}")
    return model.score(numeric)
