"""Super Tickets' phase transition from saved runs: dev score against sparsity for winning, random and
losing tickets (mean ± std over seeds), the super ticket, the plot and the tables."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from mtlheads.report.plot import pyplot, save_figure

KINDS = ("winning", "random", "losing")


def ticket_name(kind: str, level: float) -> str:
    """The mask file stem of a ticket: ``winning_30`` for 30% of the heads pruned; ``dense_00``."""
    return f"{kind}_{round(100 * level):02d}"


def parse_ticket(stem: str) -> tuple[str, float]:
    kind, pct = stem.rsplit("_", 1)
    return kind, int(pct) / 100


def collect_tickets(sweep: Path) -> list[dict]:
    """One row per finished rewind job below ``sweep``: kind, level, seed, dev score, seconds, run dir."""
    rows = []
    for metrics in sorted(Path(sweep).rglob("metrics.json")):
        config = yaml.safe_load((metrics.parent / "config.yaml").read_text(encoding="utf-8"))
        file = ((config or {}).get("heads") or {}).get("file")
        if not file:
            continue
        m = json.loads(metrics.read_text(encoding="utf-8"))
        kind, level = parse_ticket(Path(file).stem)
        rows.append(
            {"kind": kind, "level": level, "seed": m["seed"], "dev": m["dev"]["score"],
             "train_seconds": m.get("train_seconds"), "dir": str(metrics.parent.relative_to(sweep))}
        )  # fmt: skip
    return rows


def summarize(rows: list[dict]) -> dict:
    """``{"table": [{kind, level, mean, std, n, seconds}], "super_ticket": {...} | None, "dense": {...}}``;
    the super ticket is the winning level with the best mean dev score."""
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["kind"], r["level"])].append(r)
    table = []
    for (kind, level), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        devs = [r["dev"] for r in rs]
        secs = [r["train_seconds"] for r in rs if r["train_seconds"] is not None]
        table.append(
            {"kind": kind, "level": level, "mean": statistics.fmean(devs),
             "std": statistics.stdev(devs) if len(devs) > 1 else None, "n": len(devs),
             "seeds": sorted(r["seed"] for r in rs), "seconds": statistics.fmean(secs) if secs else None}
        )  # fmt: skip
    winning = [r for r in table if r["kind"] == "winning"]
    best = max(winning, key=lambda r: r["mean"], default=None)
    dense = next((r for r in table if r["kind"] == "dense"), None)
    return {"table": table, "super_ticket": best, "dense": dense}


def to_markdown(summary: dict, title: str) -> str:
    """Rows: sparsity; columns: dense / winning / random / losing dev score (%, mean ± std, n seeds)."""
    cells: dict[float, dict[str, str]] = defaultdict(dict)
    for r in summary["table"]:
        std = "–" if r["std"] is None else f"{100 * r['std']:.2f}"
        cells[r["level"]][r["kind"]] = f"{100 * r['mean']:.2f} ± {std} (n={r['n']})"
    kinds = ["dense", *KINDS]
    lines = [f"# {title}", "", "Dev score (%), mean ± sample std over seeds; sparsity = heads pruned.", ""]
    lines += ["| sparsity | " + " | ".join(kinds) + " |", "| ---: |" + " ---: |" * len(kinds)]
    for level in sorted(cells):
        lines.append(f"| {100 * level:.0f}% | " + " | ".join(cells[level].get(k, "") for k in kinds) + " |")
    st = summary["super_ticket"]
    if st is not None:
        lines += [
            "",
            f"Super ticket: winning at {100 * st['level']:.0f}% sparsity, dev {100 * st['mean']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def phase_plot(summary: dict, out: Path, title: str = "") -> list[Path]:
    """Dev score against sparsity, one line per ticket kind with ± std bands; the dense score dashed."""
    fig, ax = pyplot().subplots(figsize=(4.5, 3.2))
    for kind, color in zip(KINDS, ("tab:green", "tab:blue", "tab:red"), strict=True):
        rows = sorted((r for r in summary["table"] if r["kind"] == kind), key=lambda r: r["level"])
        if not rows:
            continue
        x = [100 * r["level"] for r in rows]
        y = [100 * r["mean"] for r in rows]
        low = [100 * (r["mean"] - (r["std"] or 0.0)) for r in rows]
        high = [100 * (r["mean"] + (r["std"] or 0.0)) for r in rows]
        ax.plot(x, y, marker="o", color=color, label=kind)
        ax.fill_between(x, low, high, color=color, alpha=0.15)
    if summary.get("dense"):
        ax.axhline(100 * summary["dense"]["mean"], color="black", ls="--", lw=1, label="dense")
    ax.set_xlabel("heads pruned (%)")
    ax.set_ylabel("dev score (%)")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    return save_figure(fig, out)
