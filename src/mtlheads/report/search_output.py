"""Hyperparameter searches' report files and ``mtlheads-report``'s search options.

``mtlheads-report <sweep dir>`` recognises an Optuna sweep dir by its ``multirun.yaml`` (written by
:class:`~mtlheads.report.optuna_search.OptunaSearch`) and, besides the usual ``report.{md,tex,json}``,
writes ``search.md``, ``search.json`` and ``search.{png,pdf}``: the trials sorted by the objective (the
metric the search optimised; ``dev/score`` by default, what ``mode=stl|mtl|gate`` return to the sweeper)
with the searched keys as columns, failed and unfinished trials listed after them, and the objective against
each searched key. ``--search`` does the same for any other dir (a W&B sweep's), the searched keys then
being the overrides whose values differ between its runs.

The report itself (trials, ``search.json``'s dict, the Markdown) is built by :mod:`mtlheads.report.search`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mtlheads.report.search import OBJECTIVE, SEARCH, _number, build_search_report, is_search, to_markdown
from mtlheads.utils.io import atomic_write_json, atomic_write_text


def plot(report: dict, out: Path) -> list[Path]:
    """The objective against each searched key (one panel per key, the best trial starred): PNG + PDF."""
    keys = report["keys"]
    finished = [t for t in report["trials"] if t["status"] == "finished" and t["objective"] is not None]
    if not keys or not finished:
        return []
    from matplotlib.ticker import NullFormatter

    from mtlheads.report.plot import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False, sharey=True)
    y = [100 * t["objective"] for t in finished]
    for ax, key in zip(axes[0], keys, strict=True):
        raw = [t["overrides"].get(key) for t in finished]
        numbers = [_number(v) for v in raw]
        if all(x is not None for x in numbers):
            x: list = numbers
            if key in report["log_keys"]:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor tick labels would overlap
        else:  # categorical: one position per value, in first-seen order
            labels = list(dict.fromkeys(str(v) for v in raw))
            x = [labels.index(str(v)) for v in raw]
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.scatter(x, y, s=22, color="tab:blue", zorder=2)
        ax.scatter([x[0]], [y[0]], s=140, marker="*", color="tab:red", zorder=3, label="best")
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{report['objective']} (%)")
    axes[0][0].legend(loc="best", fontsize=8)
    failed = report["counts"]["failed"]
    fig.suptitle(f"{len(finished)} finished trials" + (f", {failed} failed (not shown)" if failed else ""))
    fig.tight_layout()
    return save_figure(fig, out)


def write_search_report(root: Path, out: Path | None = None, **options: Any) -> tuple[str, list[Path]]:
    """Writes ``search.{md,json}`` and the plot (``search.{png,pdf}``) into ``out`` (default ``root``).

    Returns:
        The Markdown and the files written. ``options``: those of :func:`build_search_report`.
    """
    out = Path(out or root)
    report = build_search_report(Path(root), **options)
    markdown = to_markdown(report)
    written = [
        atomic_write_text(out / f"{SEARCH}.md", markdown),
        atomic_write_json(out / f"{SEARCH}.json", report),
    ]
    written += plot(report, out / SEARCH)
    return markdown, written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``mtlheads-report``'s search options."""
    group = parser.add_argument_group("searches (Optuna sweep dirs are recognised without --search)")
    group.add_argument("--search", action="store_true", help="report the dir as a search (a W&B sweep's)")
    group.add_argument("--objective", default=OBJECTIVE, help="the metric searched (default: dev/score)")
    group.add_argument(
        "--minimize",
        action="store_true",
        default=None,
        help="lower is better (default: the Optuna sweeper's direction, else max)",
    )
    group.add_argument("--keys", default=None, help="searched keys, comma-separated (default: detected)")


def report_from_args(args: argparse.Namespace, out: Path) -> str | None:
    """The search report's Markdown when ``args.dir`` is a search (or ``--search``), else None."""
    if not (args.search or is_search(args.dir)):
        return None
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    markdown, _ = write_search_report(
        args.dir, out, objective=args.objective, minimize=args.minimize, keys=keys
    )
    return markdown
