"""Checks that turn bad config values and inconsistent data into one-line user errors before a run starts.

:func:`check_config` runs before every mode (``mtlheads.cli``): it refuses values that would fail deep
inside Lightning or torch with a message that does not name the key (``seed=abc``, ``batch.max_tokens=-100``),
and values that would make a run finish without training or evaluating anything (``trainer.max_epochs=0``,
``trainer.limit_val_batches=0``), which would otherwise write a ``metrics.json`` of an untrained model.

:func:`check_alignment` runs once the data is read (:func:`mtlheads.build.read_task_data`): layers of the
same sentences (EWT's UD, UNER and CoNLL-2012 files) must give each sentence the same number of words.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlheads.data.sentence import DataFormatError
from mtlheads.errors import ConfigError

# Modes that load a trained model instead of training one: the training keys do not apply.
_NO_TRAINING = {"eval", "prune"}
_MISSING = object()


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_MISSING)


def _int(
    cfg: DictConfig, key: str, *, minimum: int | None = None, optional: bool = False, fix: str = ""
) -> None:
    """Refuses ``key`` unless it is an integer >= ``minimum`` (or null when ``optional``)."""
    value = _get(cfg, key)
    if value is _MISSING or (value is None and optional):
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError.for_value(key, value, "not an integer", fix or None)
    if minimum is not None and value < minimum:
        raise ConfigError.for_value(key, value, f"must be at least {minimum}", fix or None)


def _number(cfg: DictConfig, key: str, *, low: float, high: float = math.inf) -> None:
    """Refuses ``key`` unless it is a finite number in [``low``, ``high``]."""
    value = _get(cfg, key)
    if value is _MISSING or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError.for_value(key, value, "not a number")
    if not low <= value <= high:
        bound = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f"at least {low:g}"
        raise ConfigError.for_value(key, value, f"must be {bound}")


def _nonzero_limit(cfg: DictConfig, key: str, what: str) -> None:
    """``trainer.limit_*_batches``: a fraction in (0, 1] or a count >= 1 (null: all)."""
    value = _get(cfg, key)
    if value is _MISSING or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError.for_value(
            key,
            value,
            f"{what}: a run needs at least one batch",
            "give a fraction such as 0.5, a count such as 10, or null (all)",
        )


def check_config(cfg: DictConfig) -> None:
    """Raises :class:`~mtlheads.errors.ConfigError` naming the first config key whose value cannot work.

    Checked: ``seed``; for the training modes ``batch.*``, the ``trainer`` keys that decide whether any
    training step and dev evaluation happen, ``checkpoint.every_n_train_steps``, ``patience``, the
    learning rates and warm-up; for every mode an ``encoder.name`` that is a path, and ``out_dir``
    (created and written to once).
    """
    _int(cfg, "seed", fix="give an integer, e.g. seed=1")
    mode = _get(cfg, "mode.name")
    if mode not in _NO_TRAINING:
        _check_training(cfg)
    _int(cfg, "batch.eval_max_tokens", minimum=1)
    _check_encoder(cfg)
    _check_out_dir(cfg)


def _check_training(cfg: DictConfig) -> None:
    for key in ("batch.max_tokens", "batch.max_sentences"):
        _int(cfg, key, minimum=1)
    _int(cfg, "batch.shards", minimum=1, optional=True)
    _int(cfg, "trainer.accumulate_grad_batches", minimum=1)
    epochs, steps = _get(cfg, "trainer.max_epochs"), _get(cfg, "trainer.max_steps")
    if epochs is not _MISSING and epochs is not None:
        _int(cfg, "trainer.max_epochs", minimum=-1)  # -1: until trainer.max_steps
        if epochs == 0:
            raise ConfigError.for_value(
                "trainer.max_epochs",
                0,
                "trains nothing (a run writes scores only after training)",
                "give 1 or more",
            )
    if steps is not _MISSING and steps is not None:
        _int(cfg, "trainer.max_steps", minimum=-1)  # -1: no step limit
        if steps == 0:
            raise ConfigError.for_value(
                "trainer.max_steps", 0, "trains nothing", "give -1 (no limit) or 1 or more"
            )
    _nonzero_limit(cfg, "trainer.limit_train_batches", "no training batch")
    _nonzero_limit(cfg, "trainer.limit_val_batches", "no dev evaluation")
    _int(cfg, "trainer.check_val_every_n_epoch", minimum=1, optional=True)
    _int(cfg, "checkpoint.every_n_train_steps", minimum=0, optional=True)
    _int(cfg, "patience", minimum=0, optional=True)
    for key in ("optim.encoder_lr", "optim.decoder_lr", "optim.gate_lr", "optim.multiplier_lr"):
        _number(cfg, key, low=0.0)
    _number(cfg, "optim.warmup", low=0.0, high=1.0)
    _number(cfg, "optim.weight_decay", low=0.0)


def _check_encoder(cfg: DictConfig) -> None:
    name = _get(cfg, "encoder.name")
    # A path (not a hub name) that is not a folder: load_encoder would say so without naming the key.
    if isinstance(name, str) and name.startswith(("/", "./", "../", "~")):
        if not Path(name).expanduser().is_dir():
            raise ConfigError(
                f"encoder={name}: no such folder; give a local Hugging Face model folder, a hub name "
                "(e.g. encoder=bert-base-cased) or a config from conf/encoder (e.g. encoder=minilm)",
                key="encoder.name",
            )


def _check_out_dir(cfg: DictConfig) -> None:
    """``out_dir`` must be a folder this process can create and write in (a probe file, removed at once)."""
    out = _get(cfg, "out_dir")
    if out is _MISSING or not out:
        return
    path = Path(str(out))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out_dir={out}: is a file, not a folder; choose another out_dir", key="out_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(
            f"out_dir={out}: cannot create or write in it ({e.strerror or e}); choose another out_dir",
            key="out_dir",
        ) from None


# ---- the layers of one corpus ----------------------------------------------------------------------

# Positional pairing needs this share of identical word lists among the first pairs to treat two files as
# layers of the same sentences (an OntoNotes file next to EWT's UD file is another corpus, not an error).
_SAME_CORPUS_PAIRS, _SAME_CORPUS_SHARE = 20, 0.5


def _where(source: str) -> tuple[str, int | None]:
    path, _, line = source.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else (source, None)


def _words(sentences: Sequence[Any]) -> list[list[str]] | None:
    words = [getattr(s, "words", None) for s in sentences]
    return None if any(w is None for w in words) else words


def _have_ids(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(s.meta.get("sent_id") for s in a) and all(s.meta.get("sent_id") for s in b)


def _pairs(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[Any, Any]] | None:
    """The sentence pairs of two layers of the same sentences, or None when they are not such layers."""
    if _have_ids(a, b):  # UD and UNER files: the sentence ids say which sentence is which
        by_id = {t.meta["sent_id"]: t for t in b}
        pairs = [(s, by_id[s.meta["sent_id"]]) for s in a if s.meta["sent_id"] in by_id]
        return pairs or None
    pairs = list(zip(a, b, strict=False))  # paired in order
    head = pairs[:_SAME_CORPUS_PAIRS]
    same = sum(s.words == t.words for s, t in head)
    return pairs if head and same >= _SAME_CORPUS_SHARE * len(head) else None


def check_alignment(layers: Mapping[str, Sequence[Any]]) -> None:
    """Raises DataFormatError where two layers of the same sentences disagree on a sentence's word count.

    Args:
        layers: per data file (path), its sentences; files whose records have no ``words`` (GLUE) are
            skipped. Two files are layers of the same sentences when they share ``sent_id``s (UD, UNER),
            or else when most of their first sentences, paired in order, have the same words (CoNLL-2012,
            which has no ids: EWT keeps its sentences in the same order in every layer).
    """
    usable = {path: s for path, s in layers.items() if s and _words(s) is not None}
    for (path_a, a), (path_b, b) in combinations(usable.items(), 2):
        pairs = _pairs(a, b)
        if pairs is None:
            continue
        for s, t in pairs:
            if len(s.words) != len(t.words):
                file, line = _where(t.source)
                sent_id = s.meta.get("sent_id") or t.meta.get("sent_id")
                named = f" {sent_id}" if sent_id else ""
                raise DataFormatError(
                    file,
                    line,
                    f"sentence{named} has {len(t.words)} words, but the same sentence in {s.source} has "
                    f"{len(s.words)}: the layers of one sentence must have the same words",
                )
        if not _have_ids(a, b) and len(a) != len(b):
            raise DataFormatError(
                path_b,
                None,
                f"{len(b)} sentences, but {path_a} has {len(a)}: the layers of a corpus must hold the same "
                "sentences in the same order",
            )
