"""The findings of ``docs/science/index.md``, each drawn from whatever saved runs exist (``docs/runs/*``).

Each ``section_*`` takes the run folders (:func:`mtlheads.report.runs.find_runs`) and the figure folder, and
returns ``(markdown lines, folders used)``; no lines means "not run yet". Tables and figures come from the
report package's own functions (``collect``, ``figures``, ``probe_figures``, ``tickets``, ``gradts``); the
only figure drawn here is the STL-vs-MTL bar chart, which nothing else draws.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from mtlheads.report.collect import build_report
from mtlheads.report.runs import Job, RunFolder
from mtlheads.report.search import is_search

Section = tuple[list[str], list[RunFolder]]


def _pct(stat: dict | None) -> str:
    if not stat:
        return "–"
    std = "" if stat.get("std") is None else f" ± {100 * stat['std']:.2f}"
    return f"{100 * stat['mean']:.2f}{std}"


def main_metric(task: str, config: dict | None) -> str | None:
    """The task's model-selection metric: GLUE's table, else the task class named in the run's config."""
    from hydra.utils import get_class

    from mtlheads.data.glue_reader import GLUE_TASKS

    if task in GLUE_TASKS:
        return GLUE_TASKS[task]["main_metric"]
    target = (((config or {}).get("tasks") or {}).get(task) or {}).get("task", {}).get("_target_")
    try:
        return getattr(get_class(target), "main_metric", None) if target else None
    except (ImportError, ValueError, AttributeError):
        return None


def _series(mode: str, tasks: list[str], folder: str) -> str:
    """A table column: the STL runs of a folder form one column (one task each), an MTL model another."""
    model = "STL" if mode == "stl" else f"MTL-{len(tasks)}" if len(tasks) > 2 else "MTL " + "+".join(tasks)
    return f"{model} [{folder}]"


def _bars(columns: dict[str, dict[str, float]], out: Path) -> None:
    """Grouped bars: one group per task, one bar per column (test score, else dev, of the main metric)."""
    from mtlheads.report.plot import pyplot, save_figure

    tasks = list(dict.fromkeys(t for col in columns.values() for t in col))
    fig, ax = pyplot().subplots(figsize=(1.2 * len(tasks) + 2.5, 3))
    width = 0.8 / max(len(columns), 1)
    for i, (name, scores) in enumerate(columns.items()):
        xs = [k + i * width for k, t in enumerate(tasks) if t in scores]
        ax.bar(xs, [100 * scores[t] for t in tasks if t in scores], width, label=name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(tasks))], tasks)
    ax.set_ylabel("score (%), main metric")
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    save_figure(fig, out)


def section_stl_vs_mtl(folders: list[RunFolder], figs: Path) -> Section:
    """Per task its main metric, dev / test, for the STL runs and each MTL model of every folder."""
    cells: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    bars: dict[str, dict[str, float]] = defaultdict(dict)
    settings: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    used = []
    for folder in folders:
        # a tickets or GradTS pipeline's STL/MTL children belong to their own sections, a search's trials
        # to its own report (docs/sweeps.md): they are not models to compare
        pipeline = folder.files("tickets.json") or folder.files("tau.json") or is_search(folder.path)
        if pipeline or not any(j.mode in ("stl", "mtl") for j in folder.jobs):
            continue
        used.append(folder)
        for row in build_report(folder.path)["configurations"]:
            config = next(j.config for j in folder.jobs if j.dir == folder.path / row["runs"][0]) or {}
            masked = (config.get("heads") or {}).get("name", "none") != "none" or config.get("tickets")
            if row["mode"] not in ("stl", "mtl") or masked:
                continue
            series = _series(row["mode"], row["tasks"], folder.name)
            if any(t in cells[series] for t in row["tasks"]):  # same model twice: its differences tell apart
                series += " " + " ".join(f"{k}={v}" for k, v in row["overrides"].items())
            for task in row["tasks"]:
                metric = main_metric(task, config)
                dev, test = (row["metrics"].get(f"{s}/{task}/{metric}") for s in ("dev", "test"))
                cells[series][task] = (str(metric), f"{_pct(dev)} / {_pct(test)}")
                if test or dev:
                    bars[series][task] = (test or dev)["mean"]
            changed = ", ".join(f"`{k}={v}`" for k, v in row.get("from_default", {}).items())
            settings[series][changed or "the defaults"].append(f"{'+'.join(row['tasks'])}: {row['n_runs']}")
    if not cells:
        return [], []
    cells = dict(sorted(cells.items(), key=lambda kv: not kv[0].startswith("STL")))  # STL first
    tasks = list(dict.fromkeys(t for col in cells.values() for t in col))
    lines = ["Main metric per task, % (mean ± std over seeds), dev / test:", ""]
    lines += ["| task (metric) | " + " | ".join(cells) + " |", "| --- |" + " ---: |" * len(cells)]
    for task in tasks:
        metric = next(col[task][0] for col in cells.values() if task in col)
        lines.append(
            f"| {task} ({metric}) | "
            + " | ".join(col.get(task, ("", ""))[1] for col in cells.values())
            + " |"
        )
    _bars(bars, figs / "stl_vs_mtl")
    lines += ["", "![STL vs MTL: main metric per task (test, else dev)](figures/stl_vs_mtl.png)", ""]
    lines += ["What each column changed from the default config (its budget included), and seeds per model:"]
    for series, kinds in settings.items():
        lines += [f"- {series}: " + "; ".join(f"{k} (seeds: {', '.join(v)})" for k, v in kinds.items())]
    return [*lines, ""], used


def _score(job: Job, split: str) -> str:
    value = ((job.metrics or {}).get(split) or {}).get("score")
    return "–" if value is None else f"{100 * value:.2f}"


def _gate_rows(folder: RunFolder, tasks: str, jobs: list[Job]) -> list[str]:
    out = []
    for job in jobs:
        g = (job.metrics or {}).get("gates") or {}
        opened = f"{g['open_heads']} of {g['total_heads']}" if "open_heads" in g else "–"
        per_layer = ", ".join(map(str, g.get("open_per_layer") or [])) or "–"
        cells = [job.dir.relative_to(folder.path).as_posix(), tasks, opened, per_layer]
        out.append("| " + " | ".join([*cells, _score(job, "dev"), _score(job, "test")]) + " |")
    return out


def section_gates(folders: list[RunFolder], figs: Path) -> Section:
    """Open heads per gated run; Figure 1a (RGB overlap) for three runs of a task set, else the mean gate
    map; the task sets' gate correlations when a folder gated several."""
    from mtlheads.report.figures import gate_corr, gate_overlap, gate_tasks

    lines, used = [], []
    for folder in folders:
        groups: dict[str, list[Job]] = defaultdict(list)
        for job in folder.jobs:
            if job.gates_file is not None:
                groups["+".join(job.tasks) or "?"].append(job)
        if not groups:
            continue
        used.append(folder)
        lines += [f"**{folder.name}**", "", "| run | task set | open heads | open per layer | dev | test |"]
        lines += ["| --- | --- | ---: | --- | ---: | ---: |"]
        lines += [row for tasks, jobs in groups.items() for row in _gate_rows(folder, tasks, jobs)]
        lines.append("")
        for tasks, jobs in groups.items():
            name = f"gates_{folder.name}_{tasks.replace('+', '_')}"
            if len(jobs) >= 3:
                stats = gate_overlap([str(j.dir) for j in jobs[:3]], figs / name)
                per_layer = ", ".join(map(str, stats["open_in_any_per_layer"]))
                lines.append(
                    f"{tasks}, the first three runs (Figure 1a): open in all three {stats['open_in_all']}, "
                    f"in at least one {stats['open_in_any']} ({per_layer} per layer)."
                )
                lines += [
                    "",
                    f"![{tasks}: one RGB channel per run, black = open in all three](figures/{name}.png)",
                ]
            else:
                gate_tasks([str(j.dir) for j in jobs], figs / name)
                lines.append(
                    f"![{tasks}: mean eval gate of {len(jobs)} run(s), black = 1](figures/{name}.png)"
                )
            lines.append("")
        if len(groups) > 1:
            runs = [str(j.dir) for jobs in groups.values() for j in jobs]
            gate_corr(runs, figs / f"gates_{folder.name}_corr")
            text = (figs / f"gates_{folder.name}_corr.md").read_text(encoding="utf-8").strip()
            lines += [
                "Gate correlations ×100 (Pearson r of mean gates; diagonal: run consistency):",
                "",
                text,
                "",
            ]
    return lines, used


def section_probes(folders: list[RunFolder], figs: Path) -> Section:
    """Per probed task: each model's mean best-head accuracy (all labels, top 10) and Figure 4 (Δ vs STL)."""
    from mtlheads.heads.probe_results import ProbeResult
    from mtlheads.report.probe_figures import delta_plot, probe_label, probe_table

    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    used = []
    for folder in folders:
        found = folder.files("probe.json")
        for summary in found:
            data = json.loads(summary.read_text(encoding="utf-8"))
            for task in data["tasks"]:
                result = ProbeResult.load(summary.parent / f"probe_{task}")
                groups[task][f"{probe_label(data['probed'], task)}"].append(result)
        used += [folder] if found else []
    lines = []
    for task, models in groups.items():
        order = sorted(models, key=lambda m: (m != "static", m != "STL", m.startswith("MTL"), m))
        summary = probe_table({m: models[m] for m in order}, figs / f"probe_{task}_table")
        means = summary["mean"]  # already in points (probe_table keeps x 100)
        lines += [f"**{task.upper()} probe**: best-head accuracy (%), mean over the labels", ""]
        lines += ["| model | seeds | all labels | 10 most frequent |", "| --- | ---: | ---: | ---: |"]
        for m in order:
            row = [
                m,
                str(summary["seeds"][m]),
                f"{means['all'][m]:.2f}",
                f"{means['top10'][m]:.2f}",
            ]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", f"Per label: `figures/probe_{task}_table.md`.", ""]
        if "STL" in models and len(models) > 1:
            delta_plot(
                models["STL"], {m: models[m] for m in order if m != "STL"}, figs / f"probe_{task}_delta"
            )
            lines += [
                f"![{task.upper()} probe: best-head accuracy minus STL's](figures/probe_{task}_delta.png)",
                "",
            ]
    return lines, used


def section_tickets(folders: list[RunFolder], figs: Path) -> Section:
    """Each tickets pipeline's phase transition: its table (``tickets.md``'s) and the phase plot."""
    from mtlheads.report.tickets import phase_plot, to_markdown

    lines, used = [], []
    for folder in folders:
        for file in folder.files("tickets.json"):
            summary = json.loads(file.read_text(encoding="utf-8"))
            task = summary.get("task", "?")
            name = f"tickets_{folder.name}_{task}"
            phase_plot(summary, figs / name, title=task)
            table = to_markdown(summary, task).split("\n", 2)[2]  # without its "# title" line
            lines += [f"**{task}** (`{file.relative_to(folder.path).as_posix()}`)", "", table.strip(), ""]
            lines += [f"![{task}: dev score against heads pruned](figures/{name}.png)", ""]
            used += [folder] if folder not in used else []
    return lines, used


def section_gradts(folders: list[RunFolder], figs: Path) -> Section:
    """Each GradTS pipeline's τ matrix (table and heatmap), its trial selections and its final table."""
    lines, used = [], []
    for folder in folders:
        taus = folder.files("tau.json")
        if not taus:
            continue
        from mtlheads.report.gradts import gradts_table, tau_heatmap, tau_markdown

        used.append(folder)
        for file in taus:
            data = json.loads(file.read_text(encoding="utf-8"))
            name = f"gradts_tau_{folder.name}"
            tau_heatmap(data["tasks"], data["tau"], figs / name)
            lines += [tau_markdown(data["tasks"], data["tau"]).split("\n", 2)[2].strip(), ""]
            lines += [f"![Kendall τ-b between the tasks' head-importance matrices](figures/{name}.png)", ""]
        for trial in folder.files("trial.json"):
            record = json.loads(trial.read_text(encoding="utf-8"))
            selected = ", ".join(record.get("selected") or []) or "none"
            lines.append(f"- GradTS-trial for {trial.parent.name}: auxiliaries {selected}")
        for table in folder.files("gradts.json"):
            lines += [
                "",
                gradts_table(json.loads(table.read_text(encoding="utf-8"))).split("\n", 2)[2].strip(),
            ]
        lines.append("")
    return lines, used


SECTIONS = {
    "stl_vs_mtl": ("STL vs MTL (Stem Cell Hypothesis, Table 1)", section_stl_vs_mtl),
    "gates": ("Gated head pruning (Stem Cell Hypothesis, Figure 1a)", section_gates),
    "probes": ("Head probes (Stem Cell Hypothesis, Figure 4)", section_probes),
    "tickets": ("Super tickets: the phase transition (Super Tickets)", section_tickets),
    "gradts": ("GradTS: τ matrix and auxiliary-task selections (GradTS)", section_gradts),
}
