"""``mtlheads-report <dir> [--out DIR]``: mean ± std over seeds of every run below a directory.

Each ``metrics.json`` below ``<dir>`` is a run. Runs whose config (``config.yaml`` next to it, else
``.hydra/config.yaml``) differ only in the seed form one configuration: identity ignores the top-level keys
in DROP_TOP (``hydra``: launcher dirs and job numbers; ``logger``: its name is the run name; ``resume``:
a job re-run with ``resume=true`` is the same configuration), any ``seed`` key, and any string equal to
the run name. Columns: ``<split>/<task>/<metric>`` for each float in
``metrics.json[split][task]`` and ``<split>/score``, for split in dev, test. Cells are percentages, 2
decimals, mean ± sample std (ddof=1); with one seed the std is "–" (null in JSON, which keeps fractions).
Two more columns give wall times in seconds, mean ± std over seeds: ``train s`` (``train_seconds``) and
``s/epoch`` (one epoch, training + dev evaluation, from each run's ``history``).

Listed as failed or unfinished, never averaged: a job dir (holds ``config.yaml`` or ``.hydra/``) without
``metrics.json``, any dir with a FAILURE_FILE (``failure.json``, written by a run that failed), and a
``metrics.json`` or config that does not parse. Writes ``report.md``, ``report.tex`` and ``report.json``
into ``--out`` (default ``<dir>``) and prints the Markdown.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from mtlheads.report import defaults

METRICS_FILE, CONFIG_FILE, FAILURE_FILE = "metrics.json", "config.yaml", "failure.json"
SPLITS = ("dev", "test")
DROP_TOP = {"seed", "out_dir", "run_name", "ckpt", "hydra", "logger", "resume"}
SKIP_DIRS = {".hydra", "wandb", "checkpoints"}  # wandb/*/files/config.yaml is not a job's config
_ABSENT = object()


@dataclass
class Run:
    """A finished run: its directory, parsed ``metrics.json`` and config (None when it has none)."""

    dir: Path
    metrics: dict
    config: dict | None

    def describe(self) -> tuple[str, list[str], str]:
        """(mode, tasks, encoder) from metrics.json, else from the config ("" when unknown)."""
        m, cfg = self.metrics, self.config or {}
        found = (t for s in SPLITS for t, v in (m.get(s) or {}).items() if isinstance(v, dict))
        tasks = m.get("tasks") or list(dict.fromkeys(found))
        mode = m.get("mode") or (cfg.get("mode") or {}).get("name") or ""
        encoder = m.get("encoder") or (cfg.get("encoder") or {}).get("name") or ""
        return str(mode), [str(t) for t in tasks], str(encoder)

    def identity(self) -> dict | None:
        """The config without the keys that differ between seeds of one configuration."""
        if self.config is None:
            return None
        run_name = self.config.get("run_name")

        def clean(node: object, top: bool) -> object:
            if not isinstance(node, dict):
                return node
            return {
                k: clean(v, False)
                for k, v in node.items()
                if not (top and k in DROP_TOP) and k != "seed" and not (isinstance(v, str) and v == run_name)
            }

        return clean(self.config, True)


def _problem(root: Path, d: Path, status: str, reason: str) -> dict:
    return {"dir": os.path.relpath(d, root), "status": status, "reason": " ".join(reason.split())[:300]}


def _failure_reason(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{FAILURE_FILE} present (unreadable)"
    keys = ("type", "error", "message")
    fields = [str(data[k]) for k in keys if data.get(k)] if isinstance(data, dict) else []
    return ": ".join(fields) or json.dumps(data)


def _load(d: Path) -> Run:
    """The run in ``d``; ValueError (with the reason) when its metrics or config do not parse."""
    try:
        metrics = json.loads((d / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{METRICS_FILE} does not parse: {e}") from None
    if not isinstance(metrics, dict) or not any(isinstance(metrics.get(s), dict) for s in SPLITS):
        raise ValueError(f"{METRICS_FILE} has no dev/test results")
    path = next((p for p in (d / CONFIG_FILE, d / ".hydra" / CONFIG_FILE) if p.is_file()), None)
    try:
        config = None if path is None else yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"{path} does not parse: {e}") from None
    if path is not None and not isinstance(config, dict):
        raise ValueError(f"{path} is not a mapping")
    return Run(d, metrics, config)


def collect(root: Path) -> tuple[list[Run], list[dict]]:
    """Finished runs, and failed/unfinished/corrupt job dirs (dir, status, reason), below ``root``."""
    runs, problems = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        is_job = ".hydra" in dirnames or CONFIG_FILE in filenames
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        d = Path(dirpath)
        if FAILURE_FILE in filenames:
            problems.append(_problem(root, d, "failed", _failure_reason(d / FAILURE_FILE)))
        elif METRICS_FILE in filenames:
            try:
                runs.append(_load(d))
            except ValueError as e:
                problems.append(_problem(root, d, "corrupt", str(e)))
        elif is_job:
            problems.append(_problem(root, d, "unfinished", f"no {METRICS_FILE} (running, or crashed)"))
    return runs, problems


def _diff_paths(nodes: list, path: tuple = ()) -> list[tuple]:
    """Paths where configs differ; a node that is a mapping in every config is compared key by key."""
    if all(isinstance(n, dict) for n in nodes):
        keys = dict.fromkeys(k for n in nodes for k in n)
        return [p for k in keys for p in _diff_paths([n.get(k, _ABSENT) for n in nodes], (*path, k))]
    return [] if all(n == nodes[0] for n in nodes) else [path]


def _get(node: object, path: tuple) -> object:
    for k in path:
        node = node.get(k, _ABSENT) if isinstance(node, dict) else _ABSENT
    return node


def _short(value: object) -> str:
    if isinstance(value, dict):
        return str(value["_target_"]).rsplit(".", 1)[-1] if "_target_" in value else "{...}"
    if isinstance(value, list):
        return ",".join(_short(v) for v in value)
    return "null" if value is None else str(value)


def group_runs(runs: list[Run]) -> list[dict]:
    """Runs grouped by configuration: {"label", "overrides", "runs"}, sorted by label.

    The label is mode, tasks and encoder, then ``key=value`` for each config entry that differs between
    the configurations sharing that mode, task set and encoder, named by its shortest unambiguous dotted
    suffix (e.g. ``temperature=0.5``).
    """
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps([run.describe(), run.identity()], sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    families: dict[str, list[str]] = {}
    for key, rs in groups.items():
        families.setdefault(json.dumps(rs[0].describe()), []).append(key)
    out = []
    for keys in families.values():
        idents = {key: groups[key][0].identity() for key in keys}
        paths = _diff_paths([i for i in idents.values() if i is not None])
        short = {}
        for p in paths:
            n = next((n for n in range(1, len(p)) if sum(q[-n:] == p[-n:] for q in paths) == 1), len(p))
            short[p] = ".".join(map(str, p[-n:]))
        for key in keys:
            ident, (mode, tasks, encoder) = idents[key], groups[key][0].describe()
            overrides = {short[p]: _short(v) for p in paths if (v := _get(ident, p)) is not _ABSENT}
            extra = [f"{k}={v}" for k, v in overrides.items()] if ident is not None else ["(no config)"]
            label = " ".join(x for x in [mode, "+".join(tasks), encoder, *extra] if x)
            out.append({"label": label, "overrides": overrides, "runs": groups[key], "key": key})
    labels = [g["label"] for g in out]
    for g in out:
        if labels.count(g["label"]) > 1:  # differences the label does not show: keep labels apart
            g["label"] += f" [{hashlib.sha1(g['key'].encode()).hexdigest()[:6]}]"
    return sorted(out, key=lambda g: g["label"])


def _value(metrics: dict, column: str) -> float | None:
    node: object = metrics
    for k in column.split("/", 2):
        node = node.get(k) if isinstance(node, dict) else None
    return node if isinstance(node, float) else None


def columns(runs: list[Run]) -> list[str]:
    """``<split>/<task>/<metric>`` columns, first-seen order within each split, the split's score last."""
    out: list[str] = []
    for split in SPLITS:
        tasks, overall = {}, {}
        for run in runs:
            for key, v in (run.metrics.get(split) or {}).items():
                if isinstance(v, dict):
                    tasks.update({f"{split}/{key}/{m}": None for m, x in v.items() if isinstance(x, float)})
                elif isinstance(v, float):
                    overall[f"{split}/{key}"] = None
        out += [*tasks, *overall]
    return out


def _stat(values: list[float]) -> dict | None:
    """Mean and sample std (None with one value) of ``values``; None when there are none."""
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def _spread(values: list[float]) -> dict | None:
    """Min, median, max and n of ``values`` (None when there are none): the load of a shared machine skews
    wall times, so a mean ± std alone hides how far apart the runs were."""
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def wall_times(runs: list[Run]) -> dict:
    """Seconds, mean ± std over seeds: the whole training (``train_seconds``) and one epoch (train + dev,
    averaged over each run's ``history``); ``spread`` holds their min, median and max."""
    train = [float(t) for r in runs if isinstance(t := r.metrics.get("train_seconds"), int | float)]
    per_run = [[e["seconds"] for e in r.metrics.get("history") or [] if "seconds" in e] for r in runs]
    epochs = [statistics.fmean(x) for x in per_run if x]
    return {
        "train_seconds": _stat(train),
        "epoch_seconds": _stat(epochs),
        "spread": {"train_seconds": _spread(train), "epoch_seconds": _spread(epochs)},
    }


def build_report(root: Path) -> dict:
    """What ``report.json`` holds: columns, one row per configuration, failed/unfinished runs."""
    runs, problems = collect(root)
    cols, rows = columns(runs), []
    for g in group_runs(runs):
        stats = {}
        for col in cols:
            values = [v for r in g["runs"] if (v := _value(r.metrics, col)) is not None]
            if values:
                stats[col] = {**_stat(values), "n": len(values)}
        mode, tasks, encoder = g["runs"][0].describe()
        seeds = [r.metrics.get("seed", (r.config or {}).get("seed")) for r in g["runs"]]
        if len(set(map(str, seeds))) < len(seeds):
            print(f"warning: {g['label']}: repeated seeds {seeds}", file=sys.stderr)
        dirs = [os.path.relpath(r.dir, root) for r in g["runs"]]
        rows.append(
            dict(label=g["label"], mode=mode, tasks=tasks, encoder=encoder, overrides=g["overrides"])
            # every key the runs changed from the default config, not only those that tell rows apart
            | dict(from_default=defaults.safe_differences(g["runs"][0].config))
            | dict(n_runs=len(seeds), seeds=seeds, runs=dirs, metrics=stats, time=wall_times(g["runs"]))
        )
    note = "values are fractions, times seconds; std = sample std (ddof=1), null with one seed"
    return {"root": str(root), "note": note, "columns": cols, "configurations": rows, "failed": problems}
