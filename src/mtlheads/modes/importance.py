"""mode=importance: score every head (and FFN sub-layer) of a trained model on its training data.

``mtlheads mode=importance ckpt=<run> importance=ticket|michel|gradts`` writes to the run dir:
``importance.pt`` (``{"kind", "config", "tasks": {task: {"heads" (L, H), "ffn" (L,) or None, "raw_heads",
"instances" (N, L, H) or None, "examples"}}}``), ``importance.json`` (the same without the instance
matrices) and ``config.yaml``.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from mtlheads.build import read_split
from mtlheads.checkpoint import load_model
from mtlheads.errors import ConfigError
from mtlheads.launch.jobs import job_dir
from mtlheads.score import TaskScores, score_task
from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text


def importance_settings(icfg: DictConfig) -> dict:
    """The scorer's keyword arguments from the ``importance`` config group."""
    keys = ("kind", "ffn", "cumulative", "variant", "dropout", "limit")
    return {k: icfg[k] for k in keys if k in icfg}


def to_json(scores: dict[str, TaskScores]) -> dict:
    return {
        task: {
            "kind": s.kind,
            "examples": s.examples,
            "heads": s.heads.tolist(),
            "ffn": None if s.ffn is None else s.ffn.tolist(),
        }
        for task, s in scores.items()
    }


def run(cfg: DictConfig) -> float:
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    names = list(cfg.importance.get("tasks") or model.tasks)
    unknown = [n for n in names if n not in model.tasks]
    if unknown:
        raise ConfigError(
            f"config key 'importance.tasks': {unknown} not in checkpoint {cfg.ckpt} ({list(model.tasks)})",
            key="importance.tasks",
        )
    out = job_dir(cfg)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    scores = {}
    for name in names:
        split = read_split(model.tasks[name], train_cfg.tasks[name].train, tokenizer)
        scores[name] = score_task(
            model,
            name,
            split,
            tokenizer,
            max_tokens=cfg.batch.eval_max_tokens,
            max_sentences=cfg.batch.max_sentences,
            **importance_settings(cfg.importance),
        )
    kind, config = cfg.importance.kind, OmegaConf.to_container(cfg, resolve=True)
    tensors = {n: s.to_dict() for n, s in scores.items()}
    atomic_save({"kind": kind, "config": config, "tasks": tensors}, out / "importance.pt")
    summary = {"kind": kind, "checkpoint": str(cfg.ckpt), "tasks": to_json(scores)}
    atomic_write_json(out / "importance.json", summary)
    for name, s in scores.items():
        print(f"{name}: {s.kind} importance of {s.examples} training sentences -> {out / 'importance.pt'}")
    return float(len(scores))
