"""mode=probe: parameter-free probes of every attention head (He & Choi 2021 §7).

``mtlheads mode=probe taskset=pos ckpt=<run dir, best.ckpt or mode=prune folder>`` probes the fine-tuned
encoder; ``ckpt=static`` probes the pretrained encoder that ``encoder=`` names, untouched. Each task of
the task set is probed on its test file (or ``eval_files.<task>``): POS, NER and CON by nearest centroid
on each head's attended values, DEP and SRL by argmax attention (``heads/probe.py``). Writes to the run
dir, per task, ``probe_<task>.{pt,csv,json}`` (accuracy of every head for every label) and
``probe.json`` (mean best-head accuracy over labels and over the 10 most frequent, and what was probed).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from mtlheads.build import build_encoder, build_tasks
from mtlheads.checkpoint import CONFIG_KEY, load_model
from mtlheads.errors import ConfigError
from mtlheads.heads.probe import probe_heads
from mtlheads.heads.probe_units import KINDS
from mtlheads.launch.jobs import job_dir
from mtlheads.utils.io import atomic_write_json, atomic_write_text

STATIC = "static"


def probed_model(cfg: DictConfig) -> tuple[object, object, dict]:
    """(word encoder, tokenizer, what it is): the checkpoint's encoder, or with ``ckpt=static`` the
    pretrained one named by ``encoder=`` (loaded afresh: nothing of any fine-tuned model)."""
    if str(cfg.ckpt) == STATIC:
        encoder, tokenizer = build_encoder(cfg.encoder)
        return encoder, tokenizer, {"model": STATIC, "encoder": str(cfg.encoder.name)}
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    saved = model.checkpoint_extras.get(CONFIG_KEY, {})
    what = {
        "model": str(cfg.ckpt),
        "encoder": str(train_cfg.encoder.name),
        "mode": (saved.get("mode") or {}).get("name"),
        "tasks": list(model.tasks),
    }
    return model.encoder, tokenizer, what


def run(cfg: DictConfig) -> float:
    if not cfg.get("ckpt"):
        raise ConfigError("config key 'ckpt': give a run dir, a checkpoint file, or ckpt=static", key="ckpt")
    names = [n for n in cfg.tasks if n in KINDS]
    if not names:
        raise ConfigError(
            f"config key 'taskset': none of {list(cfg.tasks)} has a head probe ({KINDS})", key="taskset"
        )
    out = job_dir(cfg)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    encoder, tokenizer, what = probed_model(cfg)
    tasks = build_tasks(cfg)
    summary = {"probed": what, "tasks": {}}
    for name in names:
        path = cfg.eval_files.get(name) or cfg.tasks[name].test
        result = probe_heads(
            encoder,
            tokenizer,
            tasks[name].read(path),
            name,
            max_tokens=cfg.mode.max_tokens,
            max_sentences=cfg.batch.max_sentences,
        )
        result.meta.update(file=str(path), **what)
        result.save(out / f"probe_{name}")
        summary["tasks"][name] = {
            "file": str(path),
            "labels": len(result.labels),
            "mean_best": result.mean_best(),
            "mean_best_top10": result.mean_best(10),
        }
        print(
            f"{name} probe of {what['model']}: mean best-head accuracy {100 * result.mean_best():.2f} "
            f"({100 * result.mean_best(10):.2f} over the 10 most frequent) -> {out / f'probe_{name}'}.*"
        )
    atomic_write_json(out / "probe.json", summary)
    return float(sum(t["mean_best"] for t in summary["tasks"].values()) / len(names))
