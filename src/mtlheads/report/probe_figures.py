"""Head-probe figures and tables, drawn from saved probe results only (``ProbeResult.save`` files).

``mtlheads-figures`` subcommands (a RESULT is a ``<prefix>``, one of its ``.pt/.csv/.json`` files, or a run
folder holding one probe ``.pt``; ``NAME=RESULT`` may repeat a NAME for several seeds, which are averaged):

* ``probe-dot RESULT --out X [--top 30]`` (the paper's Figure 3): each of the ``top`` most frequent labels
  at x = the layer of its best head (1-based), y = that head's accuracy.
* ``probe-delta --stl RESULT... --model NAME=RESULT... --out X`` (Figure 4): per label and model,
  Δ = best-head accuracy of the model − that of STL, in points; a red dashed y = 0 line is STL; the marker
  size falls with the label's frequency rank (300 / (rank + 1)).
* ``probe-heatmap RESULT --out X``: the L × H frequency-weighted accuracy of every head.
* ``probe-table --model NAME=RESULT... --out X``: Markdown + LaTeX (+ JSON): per label its count and each
  model's best-head accuracy (mean ± std over seeds), then the mean over all labels and over the 10 most
  frequent labels.

Figures are PNG + PDF; every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from hydra.experimental.callback import Callback

from mtlheads.heads.probe_results import TOP, ProbeResult
from mtlheads.report.plot import pyplot, save_figure
from mtlheads.utils.io import atomic_write_json, atomic_write_text


def best_accuracy(results: list[ProbeResult]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Seeds of one model: labels (most frequent first), counts (C,), per-seed best-head accuracy (S, C) and
    the mean best layer (C,) (1-based). Labels missing in a seed count as NaN there."""
    labels = results[0].labels
    acc = np.full((len(results), len(labels)), np.nan)
    layer = np.full((len(results), len(labels)), np.nan)
    for s, r in enumerate(results):
        best_layer, _, best = r.best()
        where = {lab: i for i, lab in enumerate(r.labels)}
        for c, lab in enumerate(labels):
            if lab in where:
                acc[s, c], layer[s, c] = float(best[where[lab]]), float(best_layer[where[lab]]) + 1
    return labels, results[0].counts.numpy(), acc, _nanmean(layer, axis=0)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning for all-NaN slices (labels a model lacks stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _figure(width: float, height: float):
    plt = pyplot()

    plt.rcParams.update({"font.size": 8})
    fig, ax = plt.subplots(figsize=(width, height))
    return plt, fig, ax


def _save(plt, fig, out: Path) -> list[Path]:
    return save_figure(fig, out, dpi=200)


def dot_plot(result: ProbeResult, out: Path, *, top: int = 30) -> list[Path]:
    """Best-head accuracy of the ``top`` most frequent labels against the best head's layer (Figure 3)."""
    labels, _, acc, layer = best_accuracy([result])
    n = min(top, len(labels))
    plt, fig, ax = _figure(4, 3)
    x, y = layer[:n], acc[0, :n]
    ax.scatter(x, y, s=10, c="tab:blue", zorder=3)
    # no adjustText here: labels of one layer are stacked downwards from their points, at least `gap` apart,
    # and joined to their points by a thin line when moved
    gap = 0.045 * max(float(np.ptp(y)), 0.2)
    for col in np.unique(x):
        order = sorted(np.flatnonzero(x == col), key=lambda i: -y[i])
        ty = [y[i] for i in order]
        for k in range(1, len(ty)):
            ty[k] = min(ty[k], ty[k - 1] - gap)
        line = {"arrowstyle": "-", "lw": 0.3, "color": "0.5"}
        for i, t in zip(order, ty, strict=True):
            moved = line if t != y[i] else None
            ax.annotate(
                labels[i], (col, y[i]), xytext=(col + 0.12, t), fontsize=6, va="center", arrowprops=moved
            )
    ax.set_xticks(range(1, result.shape[0] + 1))
    ax.set_xlim(0.5, result.shape[0] + 0.5)
    ax.set_xlabel("Layer of the best head")
    ax.set_ylabel("Best-head accuracy")
    ax.set_title(f"{result.kind.upper()} probe, top {n} labels by frequency")
    return _save(plt, fig, out)


def delta_table(stl: list[ProbeResult], models: dict[str, list[ProbeResult]]) -> dict:
    """Per model, Δ = its mean best-head accuracy − STL's, in points, per STL label (most frequent first)."""
    labels, counts, base, _ = best_accuracy(stl)
    base = _nanmean(base, axis=0)
    deltas = {}
    for name, runs in models.items():
        own, _, acc, _ = best_accuracy(runs)
        mean = dict(zip(own, _nanmean(acc, axis=0), strict=True))
        deltas[name] = [100 * (mean.get(lab, np.nan) - b) for lab, b in zip(labels, base, strict=True)]
    return {"labels": labels, "counts": counts.tolist(), "stl": (100 * base).tolist(), "delta": deltas}


def delta_plot(stl: list[ProbeResult], models: dict[str, list[ProbeResult]], out: Path, *, top: int = 20):
    """Δ (model − STL) per label for each model (Figure 4); the legend names the ``top`` frequent labels."""
    table = delta_table(stl, models)
    labels, names = table["labels"], list(models)
    plt, fig, ax = _figure(4, 3)
    colors = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors + plt.get_cmap("tab20c").colors
    for rank, lab in enumerate(labels):
        ys = [table["delta"][m][rank] for m in names]
        kw = {"label": lab} if rank < top else {}
        ax.scatter(
            range(len(names)), ys, marker="_", s=300 / (rank + 1), color=colors[rank % len(colors)], **kw
        )
    ax.axhline(0, color="red", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("Δ best-head accuracy vs STL (points)")
    ax.set_title(f"{stl[0].kind.upper()} probe")
    ax.legend(
        fontsize=5, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=0.5, frameon=False
    )
    written = _save(plt, fig, out)
    written.append(atomic_write_json(out.with_name(out.name + ".json"), table))
    return table


def heatmap(result: ProbeResult, out: Path) -> list[Path]:
    """The L × H frequency-weighted accuracy of every head, layer 1 at the top."""
    weighted = result.weighted.numpy()
    L, H = weighted.shape
    plt, fig, ax = _figure(max(3.0, H * 0.35), max(2.5, L * 0.3))
    img = ax.imshow(weighted, cmap="viridis", vmin=0, vmax=max(float(weighted.max()), 1e-9), aspect="equal")
    if L * H <= 400:  # values only where they stay legible
        for l in range(L):
            for h in range(H):
                v = weighted[l, h]
                ax.text(
                    h,
                    l,
                    f"{100 * v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=5,
                    color="w" if v < 0.5 else "k",
                )
    ax.set_xticks(range(H), [str(h + 1) for h in range(H)])
    ax.set_yticks(range(L), [str(l + 1) for l in range(L)])
    ax.set_xlabel("Head")
    ax.set_ylabel("Layer")
    ax.set_title(f"{result.kind.upper()} probe: weighted accuracy")
    fig.colorbar(img, ax=ax, fraction=0.046, pad=0.04)
    return _save(plt, fig, out)


def _tex(label: str) -> str:
    out = "".join("\\" + ch if ch in "&%$#_{}" else ch for ch in label.replace("\\", "\\textbackslash{}"))
    return out.replace("`", "\\`{}").replace("~", "\\textasciitilde{}").replace("^", "\\textasciicircum{}")


def _md(label: str) -> str:
    return "".join("\\" + ch if ch in "|`*_[]<>\\" else ch for ch in label)


def probe_table(models: dict[str, list[ProbeResult]], out: Path) -> dict:
    """Markdown, LaTeX and JSON: per label count + each model's best-head accuracy (×100), and the means."""
    first = next(iter(models.values()))
    labels, counts, _, _ = best_accuracy(first)
    names = list(models)
    stats = {}
    for name, runs in models.items():
        own, _, acc, _ = best_accuracy(runs)
        where = {lab: i for i, lab in enumerate(own)}
        per = np.full((len(runs), len(labels)), np.nan)
        for c, lab in enumerate(labels):
            if lab in where:
                per[:, c] = acc[:, where[lab]]
        stats[name] = 100 * per  # (S, C)

    def cell(values: np.ndarray) -> str:
        values = values[~np.isnan(values)]
        if not len(values):
            return "–"
        return f"{values.mean():.2f}" + (f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else "")

    rows = [
        (lab, str(int(n)), [cell(stats[m][:, c]) for m in names])
        for c, (lab, n) in enumerate(zip(labels, counts, strict=True))
    ]
    means = {}
    for tag, k in (("all", len(labels)), (f"top{TOP}", TOP)):
        means[tag] = {m: _nanmean(stats[m][:, :k], axis=1) for m in names}  # per seed
        title = f"mean ({len(labels)} labels)" if tag == "all" else f"mean (top {min(k, len(labels))})"
        rows.append((title, str(int(counts[:k].sum())), [cell(means[tag][m]) for m in names]))
    md = ["| label | count | " + " | ".join(names) + " |", "| --- | ---: |" + " ---: |" * len(names)]
    md += [f"| {_md(lab)} | {n} | " + " | ".join(cells) + " |" for lab, n, cells in rows]
    tex = [
        "\\begin{tabular}{lr" + "r" * len(names) + "}",
        " & ".join(["label", "count", *map(_tex, names)]) + " \\\\",
    ]
    tex.append("\\hline")
    for i, (lab, n, cells) in enumerate(rows):
        if i == len(labels):
            tex.append("\\hline")
        tex.append(" & ".join([_tex(lab), n, *(c.replace("±", "$\\pm$") for c in cells)]) + " \\\\")
    tex.append("\\end{tabular}")
    atomic_write_text(out.with_name(out.name + ".md"), "\n".join(md) + "\n")
    atomic_write_text(out.with_name(out.name + ".tex"), "\n".join(tex) + "\n")
    summary = {
        "kind": first[0].kind,
        "labels": labels,
        "counts": counts.tolist(),
        "accuracy": {m: _nanmean(stats[m], axis=0).tolist() for m in names},
        "seeds": {m: len(models[m]) for m in names},
        "mean": {tag: {m: float(np.mean(v)) for m, v in per.items()} for tag, per in means.items()},
    }
    atomic_write_json(out.with_name(out.name + ".json"), summary)
    return summary


def _named(pairs: list[str]) -> dict[str, list[ProbeResult]]:
    models: dict[str, list[ProbeResult]] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model takes NAME=RESULT, got {pair!r}")
        models.setdefault(name, []).append(ProbeResult.load(path))
    return models


def add_probe_commands(sub) -> None:
    """Register the ``probe-*`` subcommands on ``mtlheads-figures``' subparsers."""
    one = {"probe-dot": "best head per label vs its layer", "probe-heatmap": "L x H weighted accuracy"}
    for name, doc in one.items():
        s = sub.add_parser(name, help=doc)
        s.add_argument("result")
        s.add_argument("--out", required=True, help="output path without extension")
        if name == "probe-dot":
            s.add_argument("--top", type=int, default=30)
        s.set_defaults(run_probe=_run)
    s = sub.add_parser("probe-delta", help="per label: model - STL best-head accuracy")
    s.add_argument("--stl", nargs="+", required=True, help="the STL result(s), seeds averaged")
    s.add_argument("--model", nargs="+", action="extend", required=True, help="NAME=RESULT")
    s.add_argument("--top", type=int, default=20, help="labels named in the legend")
    s.add_argument("--out", required=True)
    s.set_defaults(run_probe=_run)
    s = sub.add_parser("probe-table", help="Markdown + LaTeX per-label best-head accuracy of models")
    s.add_argument("--model", nargs="+", action="extend", required=True, help="NAME=RESULT")
    s.add_argument("--out", required=True)
    s.set_defaults(run_probe=_run)


def _run(args: argparse.Namespace) -> object:
    out = Path(args.out)
    if args.figure == "probe-dot":
        return dot_plot(ProbeResult.load(args.result), out, top=args.top)
    if args.figure == "probe-heatmap":
        return heatmap(ProbeResult.load(args.result), out)
    if args.figure == "probe-delta":
        return delta_plot([ProbeResult.load(p) for p in args.stl], _named(args.model), out, top=args.top)
    return probe_table(_named(args.model), out)


def probe_label(probed: dict, task: str) -> str:
    """A probed model as the Stem Cell figures name it: static, STL, MTL-<n>, or +<OTHER> for a pair."""
    if probed.get("model") == "static":
        return "static"
    tasks = probed.get("tasks") or []
    others = [t for t in tasks if t != task]
    if not others:
        return "STL"
    return f"MTL-{len(tasks)}" if len(others) > 1 else "+" + others[0].upper()


def draw_probe_sweep(sweep: Path) -> list[Path]:
    """Figure 4 and the table for each probed task, from every ``mode=probe`` job dir below ``sweep``."""
    groups: dict[str, dict[str, list[ProbeResult]]] = {}
    for summary in sorted(Path(sweep).glob("*/probe.json")):
        data = json.loads(summary.read_text(encoding="utf-8"))
        for task in data["tasks"]:
            label = probe_label(data["probed"], task)
            groups.setdefault(task, {}).setdefault(label, []).append(
                ProbeResult.load(summary.parent / f"probe_{task}")
            )
    written = []
    for task, models in groups.items():
        out = Path(sweep) / "figures" / f"probe_{task}"
        order = sorted(models, key=lambda m: (m != "static", m.startswith("MTL"), m))  # static, pairs, MTL
        probe_table(
            {m: models[m] for m in ["STL", *order] if m in models}, out.with_name(out.name + "_table")
        )
        if "STL" in models and len(models) > 1:
            delta_plot(
                models["STL"], {m: models[m] for m in order if m != "STL"}, out.with_name(out.name + "_delta")
            )
        written.append(out)
        print(f"mtlheads-figures: {task} probe figures of {sorted(models)} -> {out}_*")
    return written


class DrawProbesAfterSweep(Callback):
    """Hydra callback: after a ``mode=probe`` multirun, Figure 4 (Δ vs STL) and the table per task."""

    def on_multirun_end(self, config, **kwargs) -> None:
        draw_probe_sweep(Path(config.hydra.sweep.dir))
