"""Saving and loading trained and pruned models: the checkpoint keys live here and nowhere else.

A training checkpoint (``<run>/checkpoints/best.ckpt``, weights only; ``last.ckpt`` adds the optimizer,
scheduler, RNG and sampler states a resume needs) is a Lightning checkpoint whose extra entries are
``CONFIG_KEY`` (the resolved run config) and ``VOCAB_KEY`` (each task's label vocabulary). A pruned model
(``mode=prune``) is a folder: ``encoder/`` (the smaller transformers model, see ``heads.prune``) and
``model.pt`` (decoders, vocabularies, config). :func:`load_model` reads either, or a run dir.

Checkpoints load with ``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is refused
(:class:`~mtlheads.errors.CheckpointError`, naming the file) unless the run says ``trust_checkpoint=true``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from mtlheads.build import build_encoder, build_head_gate, build_model, build_tasks, wrap_encoder
from mtlheads.errors import CheckpointError
from mtlheads.heads.gate import HeadGate, MaskGate
from mtlheads.heads.masks import TaskMaskGate
from mtlheads.heads.prune import load_pruned, save_pruned
from mtlheads.model import MultiTaskModel
from mtlheads.tasks.base import Task
from mtlheads.utils.io import atomic_save, load_torch_file
from mtlheads.utils.io import trusting as trusting  # re-exported: the switch for every checkpoint load

CONFIG_KEY, VOCAB_KEY = "mtlheads_config", "mtlheads_vocab"
CHECKPOINT_DIR, BEST, LAST = "checkpoints", "best.ckpt", "last.ckpt"
PRUNED_MODEL, PRUNED_ENCODER = "model.pt", "encoder"


def stamp(model: MultiTaskModel, cfg: DictConfig | dict) -> None:
    """Makes every checkpoint of ``model`` carry ``cfg`` and the task vocabularies (call after fit_vocab)."""
    config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    model.checkpoint_extras = {
        CONFIG_KEY: config,
        VOCAB_KEY: {name: task.vocab_state() for name, task in model.tasks.items()},
    }


def read_checkpoint(path: str | os.PathLike, *, trust: bool | None = None) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    Args:
        path: the checkpoint file.
        trust: load with full unpickling (only for files you made yourself); None: as
            :func:`~mtlheads.utils.io.trusting` says (config key ``trust_checkpoint``, false by default).

    Raises:
        CheckpointError: missing, unreadable, refused by the weights-only load, or not a dict.
    """
    path = Path(path)
    data = load_torch_file(path, trust=trust)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not an mtlheads checkpoint (a {type(data).__name__}, not a dict)")
    return data


def best_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a file, else ``<path>/checkpoints/best.ckpt`` of a run dir."""
    path = Path(path)
    if path.is_file():
        return path
    candidate = path / CHECKPOINT_DIR / BEST
    if candidate.is_file():
        return candidate
    raise CheckpointError(f"config key ckpt={path}: no checkpoint file there (nor {candidate})")


def restore_tasks(config: dict, vocab: dict) -> dict[str, Task]:
    """The tasks of a saved run, with their saved vocabularies (no data read)."""
    tasks = build_tasks(OmegaConf.create(config))
    missing = [name for name in tasks if name not in vocab]
    if missing:
        raise CheckpointError(f"checkpoint has no vocabulary for task(s) {missing}")
    for name, task in tasks.items():
        task.load_vocab_state(vocab[name])
    return tasks


def load_model(path: str | os.PathLike) -> tuple[MultiTaskModel, Any, DictConfig]:
    """A run dir, a training checkpoint file or a ``mode=prune`` folder -> (model in eval mode, tokenizer,
    the run's config)."""
    if path and (Path(path) / PRUNED_MODEL).is_file():
        return load_pruned_model(path)
    if not path:
        raise CheckpointError(
            "config key 'ckpt' is not set: give a run dir or a checkpoint file, e.g. ckpt=<run dir>"
        )
    file = best_checkpoint(path)
    ckpt = read_checkpoint(file)
    if CONFIG_KEY not in ckpt or "state_dict" not in ckpt or VOCAB_KEY not in ckpt:
        raise CheckpointError(f"{file}: not an mtlheads checkpoint (no state_dict, config and vocabularies)")
    config, state = _upgrade(ckpt[CONFIG_KEY], ckpt["state_dict"])
    cfg = OmegaConf.create(config)
    tasks = restore_tasks(config, ckpt[VOCAB_KEY])
    encoder, tokenizer = build_encoder(cfg.encoder)
    model = build_model(OmegaConf.create({**config, "heads": None, "tickets": None}), tasks, encoder)
    model.set_heads(_saved_gate(cfg, state, encoder, list(tasks)))
    model.load_state_dict(state)
    stamp(model, config)
    return model.eval(), tokenizer, cfg


def _saved_gate(cfg: DictConfig, state: dict, encoder, tasks: list[str]) -> HeadGate | None:
    """The gate a checkpoint was trained with; a mask comes from the saved buffer, not from its file."""
    if "heads.mask" in state:
        fold = bool((cfg.get("heads") or {}).get("fold", False))
        return MaskGate(mask=state["heads.mask"], ffn=state.get("heads.ffn_mask"), fold=fold)
    if "heads.masks" in state:
        ffn = state.get("heads.ffn_masks")
        ffn = None if ffn is None else dict(zip(tasks, ffn, strict=True))
        return TaskMaskGate(masks=dict(zip(tasks, state["heads.masks"], strict=True)), ffn=ffn)
    return build_head_gate(cfg.get("heads"), encoder, tasks)


def _upgrade(config: dict, state: dict) -> tuple[dict, dict]:
    """Checkpoints written before the gate slot (``mode.gate``, ``l0.*``) read as ``heads=hard_concrete``."""
    gate = (config.get("mode") or {}).get("gate")
    if gate and not config.get("heads"):
        config = {**config, "heads": {"_target_": "mtlheads.heads.l0.hard_concrete_gate", **gate}}
        state = {("heads." + k.split(".")[-1] if k.startswith("l0.") else k): v for k, v in state.items()}
    return config, state


def save_pruned_model(model: MultiTaskModel, tokenizer, out: str | os.PathLike, gates: torch.Tensor) -> Path:
    """Writes a pruned model folder: ``encoder/`` and ``model.pt`` (decoders, vocabularies, config)."""
    out = Path(out)
    save_pruned(model.encoder.model, tokenizer, out / PRUNED_ENCODER)
    config = dict(model.checkpoint_extras[CONFIG_KEY])
    config["heads"] = {"name": "none"}  # the pruned model is ungated: its gates are in its weights
    atomic_save(
        {
            CONFIG_KEY: config,
            VOCAB_KEY: {n: t.vocab_state() for n, t in model.tasks.items()},
            "decoders": model.decoders.state_dict(),
            "gates": gates,
        },
        out / PRUNED_MODEL,
    )
    return out


def load_pruned_model(path: str | os.PathLike) -> tuple[MultiTaskModel, Any, DictConfig]:
    """A folder written by :func:`save_pruned_model` -> (model in eval mode, tokenizer, config)."""
    path = Path(path)
    saved = read_checkpoint(path / PRUNED_MODEL)
    if not {CONFIG_KEY, VOCAB_KEY, "decoders"} <= set(saved):
        raise CheckpointError(f"{path / PRUNED_MODEL}: not a pruned mtlheads model (no config or decoders)")
    cfg = OmegaConf.create(saved[CONFIG_KEY])
    tasks = restore_tasks(saved[CONFIG_KEY], saved[VOCAB_KEY])
    hf_model, tokenizer = load_pruned(
        path / PRUNED_ENCODER, attn_implementation=cfg.encoder.attn_implementation
    )
    model = build_model(
        OmegaConf.create({**saved[CONFIG_KEY], "heads": None, "tickets": None}),
        tasks,
        wrap_encoder(hf_model, tokenizer, cfg.encoder),
    )
    model.decoders.load_state_dict(saved["decoders"])
    stamp(model, saved[CONFIG_KEY])
    return model.eval(), tokenizer, cfg


def drop_last_checkpoint(run_dir: str | os.PathLike, *, keep_last: bool) -> None:
    """Deletes ``last.ckpt`` of a finished run: with the optimizer state it is ~3x the weights, and only a
    resume needs it."""
    if not keep_last:
        (Path(run_dir) / CHECKPOINT_DIR / LAST).unlink(missing_ok=True)
