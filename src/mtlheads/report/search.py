"""Hyperparameter searches: collecting one's trials and its report (trials sorted by the objective).

A search is a set of trial dirs (one run each) that differ in a few *searched keys*: the job dirs of an
Optuna sweep (``mtlheads -m hparams_search=<name>``, conf/hparams_search/) or the run dirs of a W&B sweep
agent (sweeps/*.yaml put them under ``wandb-sweeps/<sweep id>/``).

This module finds what was searched (:func:`sweep_info`, :func:`is_search`), collects the trials
(:func:`collect_trials`) and builds the report: :func:`build_search_report` (what ``search.json`` holds)
and :func:`to_markdown` (``search.md``). Writing the files and the plot, and ``mtlheads-report``'s search
options, are in :mod:`mtlheads.report.search_output`.

The Hydra callback that makes Optuna searches resumable is :mod:`mtlheads.report.optuna_search`.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("mtlheads")

MULTIRUN_FILE, RESULTS_FILE, BEST_CONFIG = "multirun.yaml", "optimization_results.yaml", "best_config.yaml"
METRICS_FILE, FAILURE_FILE, CONFIG_FILE = "metrics.json", "failure.json", "config.yaml"
SEARCH = "search"  # search.md, search.json, search.png, search.pdf
OBJECTIVE = "dev/score"
# Overrides that differ between trials without being searched (a resumed session adds resume=true).
NOT_SEARCHED = {"resume"}
_SKIP_DIRS = {".hydra", ".submitit", "wandb", "checkpoints", "gates"}


def _key(override_key: str) -> str:
    """A config key as written in an override (``+trainer.x``, ``++x``, ``~x``) -> the key (``trainer.x``)."""
    return override_key.lstrip("+~")


# ---- what was searched ----------------------------------------------------------------------------


def searched_keys(sweeper_params: Mapping | None, task_overrides: Iterable[str]) -> list[str]:
    """The keys the Optuna sweeper searches, as it decides them.

    Args:
        sweeper_params: ``hydra.sweeper.params`` (key -> search space, e.g. ``tag(log, interval(1, 2))``).
        task_overrides: ``hydra.overrides.task``; one in sweep syntax (``interval(...)``, ``a,b``) is searched
            too, and a plain value fixes its key, also a key of ``sweeper_params`` (``heads.lam=0.01``).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [f"{k}={v}" for k, v in (sweeper_params or {}).items()] + [str(o) for o in task_overrides]
    parsed = OverridesParser.create().parse_overrides(given)
    fixed = {_key(o.key_or_group) for o in parsed if not o.is_sweep_override()}
    swept = [_key(o.key_or_group) for o in parsed if o.is_sweep_override()]
    return [k for k in dict.fromkeys(swept) if k not in fixed]


def _log_keys(sweeper_params: Mapping | None) -> set[str]:
    """Searched keys with a log-scale space (``tag(log, ...)``)."""
    return {_key(str(k)) for k, v in (sweeper_params or {}).items() if "log" in str(v)}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def sweep_info(root: Path) -> dict | None:
    """What ``multirun.yaml`` says of an Optuna search in ``root`` (None when it is not one)."""
    saved = _read_yaml(root / MULTIRUN_FILE)
    hydra = saved.get("hydra") if isinstance(saved, dict) else None
    sweeper = (hydra or {}).get("sweeper") or {}
    if "optuna" not in str(sweeper.get("_target_", "")).lower():
        return None
    direction = sweeper.get("direction", "minimize")
    direction = direction[0] if isinstance(direction, list) else direction  # multi-objective: the first
    params = sweeper.get("params") or {}
    return {
        "keys": searched_keys(params, (hydra.get("overrides") or {}).get("task") or []),
        "log_keys": sorted(_log_keys(params)),
        "direction": str(direction),
        "study_name": sweeper.get("study_name"),
        "n_trials": sweeper.get("n_trials"),
    }


def is_search(root: Path) -> bool:
    """Whether ``root`` is the sweep dir of an Optuna search."""
    return sweep_info(root) is not None or (root / RESULTS_FILE).is_file()


# ---- the trials -----------------------------------------------------------------------------------


@dataclass
class Trial:
    """One run of a search.

    Attributes:
        dir: relative to the search's root.
        status: ``finished`` (``metrics.json``), ``failed`` (``failure.json``) or ``unfinished``.
        overrides: the run's command-line overrides (``.hydra/overrides.yaml``): key (without ``+``) ->
            value as typed.
        argv: the same overrides as typed (``+key=value``): the run again is ``mtlheads <argv>``.
        objective: the searched metric (None unless finished and logged).
        scores: ``dev/score`` and ``test/score`` when present.
        train_seconds: training wall time.
        error: ``type: error`` of a failed run.
    """

    dir: str
    status: str
    overrides: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    objective: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    error: str = ""


def metric(metrics: Mapping, path: str) -> float | None:
    """``metrics.json`` value at a W&B-style name: ``dev/score`` or ``<split>/<task>/<metric>``."""
    node: Any = metrics
    for part in path.split("/"):
        node = node.get(part) if isinstance(node, Mapping) else None
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _argv(job: Path) -> list[str]:
    listed = _read_yaml(job / ".hydra" / "overrides.yaml")
    return [str(o) for o in listed] if isinstance(listed, list) else []


def _trial(root: Path, job: Path, objective: str) -> Trial:
    argv = _argv(job)
    overrides = {_key(k): v for k, sep, v in (o.partition("=") for o in argv) if sep}
    trial = Trial(dir=os.path.relpath(job, root), status="unfinished", overrides=overrides, argv=argv)
    if (job / FAILURE_FILE).is_file():
        data = _read_yaml(job / FAILURE_FILE)  # JSON is YAML
        data = data if isinstance(data, dict) else {}
        trial.status = "failed"
        trial.error = ": ".join(str(data[k]) for k in ("type", "error") if data.get(k)) or "failure.json"
        return trial
    try:
        metrics = json.loads((job / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return trial  # running, killed, or a metrics.json that does not parse
    trial.status = "finished"
    trial.objective = metric(metrics, objective)
    trial.scores = {s: v for s in ("dev/score", "test/score") if (v := metric(metrics, s)) is not None}
    seconds = metrics.get("train_seconds")
    trial.train_seconds = float(seconds) if isinstance(seconds, (int, float)) else None
    return trial


def collect_trials(root: Path, objective: str = OBJECTIVE) -> list[Trial]:
    """Every run dir below ``root`` (a dir holding ``.hydra/``, ``metrics.json`` or ``failure.json``)."""
    trials = []
    for dirpath, dirnames, filenames in os.walk(root):
        job = Path(dirpath)
        if ".hydra" in dirnames or METRICS_FILE in filenames or FAILURE_FILE in filenames:
            if job != root or ".hydra" in dirnames:  # the root is a trial only for a single run
                trials.append(_trial(root, job, objective))
                dirnames[:] = []  # trials are not nested
                continue
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
    return trials


# ---- the report -----------------------------------------------------------------------------------


def _number(value: str) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def build_search_report(
    root: Path, *, objective: str = OBJECTIVE, minimize: bool | None = None, keys: list[str] | None = None
) -> dict:
    """What ``search.json`` holds: trials sorted by the objective (best first), then failed, unfinished.

    Args:
        root: the sweep dir (or any dir holding the search's runs).
        objective: a ``metrics.json`` value by its W&B name (``dev/score``, ``dev/pos/acc``).
        minimize: the direction; None = the Optuna sweeper's (``multirun.yaml``), else maximise.
        keys: the searched keys; None = the Optuna sweeper's, else the overrides that differ between runs.
    """
    info = sweep_info(root) or {}
    trials = collect_trials(root, objective)
    if keys is None:
        keys = info.get("keys") or _varying_keys(trials)
    if minimize is None:
        minimize = info.get("direction", "maximize") == "minimize"
    finished = [t for t in trials if t.status == "finished" and t.objective is not None]
    finished.sort(key=lambda t: (t.objective if minimize else -t.objective, t.dir))  # type: ignore[operator]
    rest = [t for t in trials if t not in finished]
    rest.sort(key=lambda t: (t.status != "finished", t.status != "failed", t.dir))
    counts = {s: sum(t.status == s for t in trials) for s in ("finished", "failed", "unfinished")}
    log_keys = set(info.get("log_keys") or [])
    for k in keys:  # no declared space (a W&B sweep's runs): log scale when positive over >= 20x
        values = [x for t in finished if (x := _number(t.overrides.get(k))) is not None]
        if k not in info.get("keys", []) and values and min(values) > 0 and max(values) >= 20 * min(values):
            log_keys.add(k)
    results = _read_yaml(root / RESULTS_FILE)
    return {
        "root": str(root),
        "objective": objective,
        "direction": "minimize" if minimize else "maximize",
        "keys": keys,
        "log_keys": sorted(log_keys & set(keys)),
        "counts": counts,
        "best": asdict(finished[0]) if finished else None,
        "trials": [asdict(t) for t in finished + rest],
        "optuna": results if isinstance(results, dict) else None,
    }


def _varying_keys(trials: list[Trial]) -> list[str]:
    keys = dict.fromkeys(k for t in trials for k in t.overrides if k not in NOT_SEARCHED)
    return [k for k in keys if len({t.overrides.get(k) for t in trials}) > 1]


def _value(value: str | None) -> str:
    """An override's value for a table: floats to 4 significant digits, anything else as typed."""
    if value is None:
        return ""
    x = _number(value)
    return f"{x:.4g}" if x is not None and not value.lstrip("+-").isdigit() else value


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def to_markdown(report: dict) -> str:
    """The search as Markdown: one row per trial, best first; failed and unfinished trials after."""
    keys, objective = report["keys"], report["objective"]
    extra = [s for s in ("dev/score", "test/score") if s != objective]
    c = report["counts"]
    lines = [f"# Search: {report['root']}", ""]
    lines.append(
        f"Objective `{objective}` ({report['direction']}), in %; {sum(c.values())} trials: {c['finished']} "
        f"finished, {c['failed']} failed, {c['unfinished']} unfinished (running, or killed)."
    )
    if report["best"]:
        best = report["best"]
        params = ", ".join(f"{k}={_value(best['overrides'].get(k))}" for k in keys)
        lines.append(f"Best: `{best['dir']}` ({params}): {_pct(best['objective'])}.")
    lines += ["", "| rank | trial | " + " | ".join([*keys, objective, *extra, "train s", "status"]) + " |"]
    lines.append("| ---: | --- |" + " ---: |" * (len(keys) + 1 + len(extra) + 1) + " --- |")
    rank = 0
    for t in report["trials"]:
        ranked = t["status"] == "finished" and t["objective"] is not None
        rank += ranked
        status = f"failed: {t['error']}" if t["status"] == "failed" else t["status"]
        seconds = t["train_seconds"]
        seconds = "" if seconds is None else f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}"
        cells = [str(rank) if ranked else "–", f"`{t['dir']}`"]
        cells += [_value(t["overrides"].get(k)) for k in keys]
        cells += [_pct(t["objective"]), *(_pct(t["scores"].get(s)) for s in extra), seconds, status]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    optuna = report.get("optuna") or {}
    if "best_value" in optuna:
        best_params = optuna.get("best_params")
        lines += ["", f"Optuna's best (`{RESULTS_FILE}`): {best_params} -> {optuna['best_value']}"]
    return "\n".join(lines) + "\n"
