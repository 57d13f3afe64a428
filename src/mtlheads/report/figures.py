"""``mtlheads-figures``: the Stem Cell Hypothesis' gate figures, drawn from gated runs' ``gates.pt``.

* ``gate-overlap RUN1 RUN2 RUN3`` (Figure 1a): one RGB channel per run, cell colour ``(1-z¹, 1-z², 1-z³)``:
  black = open in all three, white = closed in all, cyan/magenta/yellow = open only in run 1/2/3.
* ``gate-tasks RUN...`` (Figure 1g): the mean gate over ALL given models (the original script averaged
  only the last task's runs), drawn as black with alpha = mean.
* ``gate-corr RUN...``: Pearson r between the tasks' mean gates; on the diagonal, run consistency
  ``sqrt(adjusted R²)`` of ``z3 ~ z1 + z2`` over the heads. Markdown, LaTeX and JSON, values x 100.
* ``probe-dot``, ``probe-delta``, ``probe-heatmap``, ``probe-table``: head-probe figures and tables from
  saved probe results (:mod:`mtlheads.report.probe_figures`).

A RUN is a run dir holding ``gates.pt`` or ``gates.json`` (and ``metrics.json``, whose ``tasks`` name the task
set) or such a file. Figures are written as PNG and PDF.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from hydra.experimental.callback import Callback

from mtlheads.report.plot import pyplot, save_figure
from mtlheads.utils.io import atomic_write_json, atomic_write_text


def load_gates(run: str | Path) -> tuple[np.ndarray, str]:
    """(L, H) eval gates of a run and its task-set label (``+``-joined tasks, or the dir name)."""
    path = Path(run)
    file = path / "gates.pt" if path.is_dir() else path
    if path.is_dir() and not file.is_file():  # a saved run (docs/runs/): the gates as JSON
        file = path / "gates.json"
    if not file.is_file():
        raise FileNotFoundError(f"{run}: no gates.pt or gates.json (is it a mode=gate run dir?)")
    if file.suffix == ".json":
        gates = np.array(json.loads(file.read_text(encoding="utf-8"))["gates"], dtype=np.float64)
    else:
        gates = torch.load(file, map_location="cpu").double().numpy()
    metrics = file.parent / "metrics.json"
    label = "+".join(json.loads(metrics.read_text())["tasks"]) if metrics.is_file() else file.parent.name
    return gates, label


def overlap_colors(gates: list[np.ndarray]) -> np.ndarray:
    """Three (L, H) gate maps -> (L, H, 3) RGB in [0, 1], one subtractive channel per run."""
    if len(gates) != 3:
        raise ValueError(f"gate-overlap takes exactly 3 runs, got {len(gates)}")
    return np.stack([1.0 - g for g in gates], axis=-1).clip(0, 1)


def overlap_stats(gates: list[np.ndarray], threshold: float = 1e-3) -> dict:
    """Open heads per run, shared by all runs, and open in >= 1 run per layer."""
    open_ = np.stack([g > threshold for g in gates])  # (R, L, H)
    return {
        "open_per_run": open_.sum(axis=(1, 2)).tolist(),
        "open_in_all": int(open_.all(0).sum()),
        "open_in_any": int(open_.any(0).sum()),
        "open_per_layer_per_run": open_.sum(2).tolist(),
        "open_in_any_per_layer": open_.any(0).sum(1).tolist(),
    }


def _grid(colors: np.ndarray, out: Path, alpha: np.ndarray | None = None) -> list[Path]:
    plt = pyplot()

    layers, heads = colors.shape[:2]
    fig, ax = plt.subplots(figsize=(heads / 2, layers / 2))
    for i in range(layers):
        for j in range(heads):
            a = 1.0 if alpha is None else float(alpha[i, j])
            ax.add_patch(plt.Rectangle((j, layers - 1 - i), 1, 1, fc=(*colors[i, j], a), ec="black", lw=0.1))
    ax.set_xlim(0, heads)
    ax.set_ylim(0, layers)
    ax.set_xticks(np.arange(heads) + 0.5, [str(h + 1) for h in range(heads)])
    ax.set_yticks(np.arange(layers) + 0.5, [str(layers - i) for i in range(layers)])
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("Heads")
    ax.set_ylabel("Layers")
    ax.set_aspect("equal")
    return save_figure(fig, out)


def gate_overlap(runs: list[str], out: Path) -> dict:
    gates = [load_gates(r)[0] for r in runs]
    stats = overlap_stats(gates)
    _grid(overlap_colors(gates), out)
    atomic_write_json(out.with_suffix(".json"), {"runs": list(map(str, runs)), **stats})
    return stats


def gate_tasks(runs: list[str], out: Path) -> np.ndarray:
    mean = np.mean([load_gates(r)[0] for r in runs], axis=0)  # every given model, not the last task's
    _grid(np.zeros((*mean.shape, 3)), out, alpha=mean)
    atomic_write_json(out.with_suffix(".json"), {"runs": list(map(str, runs)), "mean_gates": mean.tolist()})
    return mean


def run_consistency(gates: list[np.ndarray]) -> float:
    """sqrt(adjusted R²) of the OLS fit ``z_last ~ 1 + z_1 + ... `` over all heads."""
    y = gates[-1].ravel()
    x = np.column_stack([np.ones_like(y), *[g.ravel() for g in gates[:-1]]])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    n, k = x.shape
    r2 = 1 - resid @ resid / ((y - y.mean()) @ (y - y.mean()))
    adj = 1 - (1 - r2) * (n - 1) / (n - k)
    return float(np.sqrt(max(adj, 0.0)))


def gate_corr(runs: list[str], out: Path) -> dict:
    from scipy.stats import pearsonr

    by_task: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in runs:
        g, label = load_gates(r)
        by_task[label].append(g)
    names = list(by_task)
    means = {t: np.mean(by_task[t], axis=0).ravel() for t in names}
    table = {a: {} for a in names}
    for a in names:
        for b in names:
            if a == b:
                table[a][b] = run_consistency(by_task[a]) if len(by_task[a]) >= 2 else None
            else:
                table[a][b] = float(pearsonr(means[a], means[b]).statistic)
    cell = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    md = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    md += [f"| {a} | " + " | ".join(cell(table[a][b]) for b in names) + " |" for a in names]
    tex = ["\\begin{tabular}{l" + "r" * len(names) + "}", " & ".join(["", *names]) + " \\\\ \\hline"]
    tex += [" & ".join([a, *(cell(table[a][b]) for b in names)]) + " \\\\" for a in names]
    tex.append("\\end{tabular}")
    atomic_write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    atomic_write_text(out.with_suffix(".tex"), "\n".join(tex) + "\n")
    atomic_write_json(
        out.with_suffix(".json"), {"runs_per_task": {t: len(by_task[t]) for t in names}, **table}
    )
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mtlheads-figures", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="figure", required=True)
    for name in ("gate-overlap", "gate-tasks", "gate-corr"):
        s = sub.add_parser(name)
        s.add_argument("runs", nargs="+")
        s.add_argument("--out", required=True, help="output path without extension")
    from mtlheads.report.probe_figures import add_probe_commands  # probe-dot, -delta, -heatmap, -table

    add_probe_commands(sub)
    args = p.parse_args(argv)
    if hasattr(args, "run_probe"):
        args.run_probe(args)
        print(f"wrote {args.out}.*")
        return
    fn = {"gate-overlap": gate_overlap, "gate-tasks": gate_tasks, "gate-corr": gate_corr}[args.figure]
    result = fn(args.runs, Path(args.out))
    if isinstance(result, dict):
        print(json.dumps(result, indent=1))
    print(f"wrote {args.out}.*")


if __name__ == "__main__":
    main()


class DrawAfterSweep(Callback):
    """Hydra callback (``hydra.callbacks``): after a multirun, draws ``figures`` from its gated jobs.

    Args:
        figures: names among ``gate-overlap``, ``gate-tasks``, ``gate-corr``; written to
            ``<sweep dir>/figures/<name>.*``.
    """

    def __init__(self, *, figures: list[str]):
        self.figures = list(figures)

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        draw_sweep(sweep, self.figures)


def draw_sweep(sweep: Path, figures: list[str]) -> list[Path]:
    """Draws ``figures`` from every job dir of ``sweep`` that holds a ``gates.pt``."""
    runs = sorted(str(p.parent) for p in sweep.glob("*/gates.pt"))
    if not runs:
        print(f"mtlheads-figures: no gates.pt under {sweep}: nothing drawn")
        return []
    fns = {"gate-overlap": gate_overlap, "gate-tasks": gate_tasks, "gate-corr": gate_corr}
    out = []
    for name in figures:
        fns[name](runs, sweep / "figures" / name)
        out.append(sweep / "figures" / name)
        print(f"mtlheads-figures: {name} from {len(runs)} runs -> {sweep / 'figures' / name}.*")
    return out
