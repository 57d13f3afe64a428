"""Small builders shared by every mode: config -> encoder, tasks, head gate, model, data splits, logger.

Each mode composes these; none of them knows which mode called it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from mtlheads.data.sentence import DataFormatError
from mtlheads.encoder.load import load_encoder
from mtlheads.encoder.word_encoder import WordEncoder
from mtlheads.errors import ConfigError, MissingFileError, UserError, one_line
from mtlheads.heads.gate import HeadGate, head_shape
from mtlheads.heads.masks import task_mask_gate
from mtlheads.heads.tickets import super_tickets
from mtlheads.model import MultiTaskModel, OptimConfig
from mtlheads.tasks.base import Task
from mtlheads.training.data import TaskSplit, subword_lengths
from mtlheads.validate import check_alignment

SPLITS = ("train", "dev", "test")


def build_encoder(cfg: DictConfig) -> tuple[WordEncoder, object]:
    """``cfg.encoder`` -> (word-level encoder, tokenizer)."""
    model, tokenizer = load_encoder(cfg.name, attn_implementation=cfg.attn_implementation)
    return wrap_encoder(model, tokenizer, cfg), tokenizer


def wrap_encoder(model, tokenizer, cfg: DictConfig) -> WordEncoder:
    """A loaded transformers model -> the word-level encoder ``cfg`` (``cfg.encoder``) describes."""
    return WordEncoder(
        model=model,
        pooling=cfg.pooling,
        word_dropout=cfg.word_dropout,
        mask_token_id=tokenizer.mask_token_id
        if tokenizer.mask_token_id is not None
        else tokenizer.unk_token_id,
        special_ids=list(tokenizer.all_special_ids),
        max_length=cfg.max_length,
        stride=cfg.stride,
    )


def build_tasks(cfg: DictConfig, *, single_task: bool = False) -> dict[str, Task]:
    """``cfg.tasks`` (name -> {task, train, dev, test}) -> task objects, in config order."""
    if not cfg.get("tasks"):
        raise ConfigError(
            "config key 'tasks' is empty: choose a task set, e.g. taskset=ewt3 or taskset=pos", key="tasks"
        )
    if single_task and len(cfg.tasks) != 1:
        raise ConfigError(
            f"mode=stl trains one task but taskset gives {list(cfg.tasks)}: "
            "use taskset=<one task> or mode=mtl",
            key="taskset",
        )
    return {name: instantiate_config(tc.task, f"tasks.{name}.task") for name, tc in cfg.tasks.items()}


def instantiate_config(node: DictConfig, key: str, **kwargs):
    """``hydra.utils.instantiate(node, **kwargs)``; a constructor that rejects the config's values (a
    ValueError, a missing file, an unknown argument, Lightning's MisconfigurationException) becomes a
    :class:`~mtlheads.errors.ConfigError` naming ``key``. Other errors are bugs and pass unchanged."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from e
        rejected = isinstance(cause, (ValueError, FileNotFoundError, MisconfigurationException)) or (
            isinstance(cause, TypeError) and "argument" in str(cause)
        )
        if not rejected:
            raise
        raise ConfigError(f"config key {key}: {one_line(cause)}", key=key) from e


def build_head_gate(
    cfg: DictConfig | None, encoder: WordEncoder, tasks: list[str], tickets: str | None = None
) -> HeadGate | None:
    """``cfg.heads`` -> the gate for the model's slot, sized to ``encoder`` (None for ``heads=none``).

    ``tickets`` (the config key): a folder of ``mode=tickets`` runs; each task's batches then run under its
    own super ticket (Super Tickets' ticket sharing) and ``heads`` must be ``none``.
    """
    layers, heads = head_shape(encoder.model)
    if tickets:
        if cfg and cfg.get("_target_"):
            raise ValueError(
                "config keys 'tickets' and 'heads' both set a head gate: use heads=none with tickets"
            )
        return task_mask_gate(
            super_tickets(tickets, shape=(layers, heads)), tasks, where=f"tickets={tickets}"
        )
    if not cfg or not cfg.get("_target_"):
        return None
    kwargs = {k: v for k, v in cfg.items() if k != "name"}  # name: the option's label, not an argument
    return instantiate(kwargs, num_layers=layers, num_heads=heads, tasks=list(tasks))


def build_model(cfg: DictConfig, tasks: Mapping[str, Task], encoder: WordEncoder) -> MultiTaskModel:
    """The model ``cfg`` describes: ``encoder``, one decoder per task, the balancer and the head gate."""
    return MultiTaskModel(
        encoder=encoder,
        tasks=tasks,
        optim=instantiate(cfg.optim) if cfg.get("optim") else OptimConfig(),
        balancer=instantiate(cfg.balancer) if cfg.get("balancer") else None,
        heads=build_head_gate(cfg.get("heads"), encoder, list(tasks), cfg.get("tickets")),
    )


def read_split(task: Task, path: str, tokenizer, *, key: str | None = None) -> TaskSplit:
    """Reads one file with the task's reader and measures subword lengths.

    Args:
        task: the task whose reader reads the file.
        path: the file.
        tokenizer: the encoder's tokenizer.
        key: the config key that named the file (e.g. ``tasks.pos.dev``), for error messages.

    Raises:
        MissingFileError: no such file.
        DataFormatError: a directory, a malformed file, or a file with no sentences (empty, comments or a
            header only): a run must train and evaluate on something.
    """
    named = f"task '{task.name}'" + (f", config key {key}" if key else "")
    if Path(path).is_dir():
        raise DataFormatError(str(path), None, f"is a directory, not a data file ({named})")
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: no such file ({named}); check data_dir or the task's files")
    sentences = task.read(path)
    if not sentences:
        raise DataFormatError(
            str(path),
            None,
            f"no sentences in the file ({named}): it is empty or holds only comments/a header",
        )
    return TaskSplit(sentences=sentences, lengths=subword_lengths(tokenizer, task, sentences))


def read_task_data(
    cfg: DictConfig, tasks: Mapping[str, Task], tokenizer, splits=SPLITS
) -> dict[str, dict[str, TaskSplit]]:
    """Reads every split of every task and fits each task's vocabulary on its train split.

    A split whose file is null (e.g. GLUE test sets, which have no labels) is left out. Files of several
    layers of the same sentences (e.g. EWT's UD, NER and CoNLL-2012 files) must agree on every sentence's
    number of words (:func:`mtlheads.validate.check_alignment`).
    """
    data = {
        name: {
            s: read_split(task, cfg.tasks[name][s], tokenizer, key=f"tasks.{name}.{s}")
            for s in splits
            if cfg.tasks[name].get(s)
        }
        for name, task in tasks.items()
    }
    for split in splits:
        check_alignment({str(cfg.tasks[n][split]): d[split].sentences for n, d in data.items() if split in d})
    for name, task in tasks.items():
        if "train" in data[name]:
            if cfg.tasks[name].get("keep"):  # a subset of the training data (GradTS-fg)
                data[name]["train"] = keep_subset(
                    data[name]["train"], cfg.tasks[name].keep, f"tasks.{name}.keep"
                )
            task.fit_vocab(data[name]["train"].sentences)
    return data


def keep_subset(split: TaskSplit, path: str, key: str) -> TaskSplit:
    """The sentences of ``split`` whose 0-based indices a JSON list in ``path`` names, in file order."""
    try:
        keep = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"config key {key}: cannot read a JSON list of sentence indices from {path}: {e}", key=key
        ) from None
    n = len(split.sentences)
    if not isinstance(keep, list) or not all(isinstance(i, int) and 0 <= i < n for i in keep):
        raise ConfigError(f"config key {key}: {path} must list sentence indices in 0..{n - 1}", key=key)
    idx = sorted(set(keep))
    return TaskSplit(sentences=[split.sentences[i] for i in idx], lengths=[split.lengths[i] for i in idx])


def build_logger(cfg: DictConfig, out_dir: Path):
    """``cfg.logger`` -> a Lightning logger writing under ``out_dir`` (False when disabled)."""
    if not cfg.get("logger"):
        return False
    logger = instantiate(cfg.logger, save_dir=str(out_dir))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def close_logger(logger, failed: bool | None = None) -> None:
    """Ends a W&B run so that the next job of a multirun gets its own run.

    Args:
        logger: what :func:`build_logger` returned.
        failed: mark the run as failed (exit code 1). None: failed when called while an exception
            propagates, as from the ``finally`` of a mode whose training raised.
    """
    if isinstance(logger, pl.loggers.WandbLogger):
        import wandb

        if failed is None:
            failed = sys.exc_info()[1] is not None
        wandb.finish(exit_code=1 if failed else 0)
