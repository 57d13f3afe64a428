"""GradTS outputs as tables and figures: the τ matrix (Markdown, heatmap) and the selection table."""

from __future__ import annotations

import statistics
from pathlib import Path

from mtlheads.report.plot import pyplot, save_figure


def tau_markdown(tasks: list[str], tau: list[list[float]]) -> str:
    """The Kendall τ-b matrix between tasks' head-importance matrices, rows = main task."""
    lines = ["# GradTS: Kendall τ-b between task head-importance matrices", ""]
    lines += ["| main \\ aux | " + " | ".join(tasks) + " |", "| --- |" + " ---: |" * len(tasks)]
    lines += [
        f"| {t} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for t, row in zip(tasks, tau, strict=True)
    ]
    return "\n".join(lines) + "\n"


def tau_heatmap(tasks: list[str], tau: list[list[float]], out: Path) -> list[Path]:
    """The τ matrix as a heatmap with its values written in the cells."""
    plt = pyplot()
    n = len(tasks)
    fig, ax = plt.subplots(figsize=(0.6 * n + 1.5, 0.6 * n + 1))
    im = ax.imshow(tau, cmap="viridis", vmin=min(min(r) for r in tau), vmax=1.0)
    ax.set_xticks(range(n), tasks, rotation=45, ha="right")
    ax.set_yticks(range(n), tasks)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{tau[i][j]:.2f}", ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(im, ax=ax, label="Kendall τ-b")
    return save_figure(fig, out)


def _cell(values: list[float] | float) -> str:
    values = values if isinstance(values, list) else [values]
    mean = 100 * statistics.fmean(values)
    return f"{mean:.2f}" + (f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else "")


def gradts_table(rows: dict[str, dict]) -> str:
    """Per main task: STL, all-tasks MTL, GradTS-trial (its auxiliaries), GradTS-fg (its usage)."""
    lines = ["# GradTS: main-task dev score (%), mean ± std over seeds", ""]
    lines += ["| main | metric | STL | MTL (all) | GradTS-trial | trial aux | GradTS-fg | fg usage |"]
    lines += ["| --- | --- | ---: | ---: | ---: | --- | ---: | --- |"]
    for main, r in rows.items():
        usage = ", ".join(f"{a} {u['kept']}/{u['scored']}" for a, u in r["fg_usage"].items()) or "–"
        cells = [main, r["metric"], _cell(r["stl"]), _cell(r["mtl_all"]), _cell(r["trial"])]
        cells += [", ".join(r["trial_aux"]) or "–", _cell(r["fg"]), usage]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
