"""Tables: the ``mtlheads-report`` Markdown/LaTeX renderings of ``report.json``, and the plain-text score
table a run prints at its end."""

from __future__ import annotations

from collections.abc import Mapping

from mtlheads.report.defaults import markdown as defaults_markdown

NOTE = "Mean ± sample std (ddof=1) over seeds, in %; – = one seed (no std); times in seconds"
RANGE_NOTE = "times in seconds as min / median / max over seeds"
TIME_HEADS = ("train s", "s/epoch")  # wall time of the whole training; of one epoch (train + dev)


def _cell(stat: dict | None, n_runs: int, pm: str = " ± ", dash: str = "–") -> str:
    if stat is None:
        return ""
    std = dash if stat["std"] is None else f"{100 * stat['std']:.2f}"
    return f"{100 * stat['mean']:.2f}{pm}{std}" + (f" (n={stat['n']})" if stat["n"] < n_runs else "")


def _seconds(stat: dict | None, pm: str = " ± ") -> str:
    if stat is None:
        return ""
    if "median" in stat:  # min / median / max: the load on a shared machine skews times
        return " / ".join(f"{stat[k]:.0f}" for k in ("min", "median", "max"))
    return f"{stat['mean']:.0f}" + ("" if stat["std"] is None else f"{pm}{stat['std']:.0f}")


def _time_cells(row: dict, pm: str = " ± ", spread: bool = False) -> list[str]:
    time = row.get("time") or {}
    stats = (time.get("spread") or {}) if spread else time
    return [_seconds(stats.get(k), pm) for k in ("train_seconds", "epoch_seconds")]


def _note(report: dict) -> str:
    return NOTE.replace("times in seconds", RANGE_NOTE) if report.get("times") == "range" else NOTE


def to_markdown(report: dict) -> str:
    """The report as Markdown: the table, then the failed/unfinished runs."""
    cols = report["columns"]
    lines = [f"# mtlheads report: {report['root']}", "", _note(report) + ".", ""]
    spread = report.get("times") == "range"
    lines.append("| " + " | ".join(["configuration", "seeds", *TIME_HEADS, *cols]) + " |")
    lines.append("| --- | ---: |" + " ---: |" * (len(TIME_HEADS) + len(cols)))
    for r in report["configurations"]:
        cells = [r["label"].replace("|", "\\|"), str(r["n_runs"]), *_time_cells(r, spread=spread)]
        cells += [_cell(r["metrics"].get(c), r["n_runs"]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    if report["failed"]:
        lines += ["", "## Failed or unfinished runs (not averaged)", ""]
        lines += [f"- `{p['dir']}`: {p['status']}: {p['reason']}" for p in report["failed"]]
    return "\n".join(lines) + "\n" + defaults_markdown(report)


def _tex(s: str) -> str:
    special = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(c, "\\" + c if c in "&%$#_{}" else c) for c in s)


def to_latex(report: dict) -> str:
    """The report as a LaTeX ``tabular``; failed/unfinished runs as comments below it."""
    cols = report["columns"]
    note = _note(report).replace("±", "$\\pm$").replace("–", "--")
    lines = [f"% mtlheads report: {report['root']}", "% " + note]
    lines += ["\\begin{tabular}{l r" + " r" * (len(TIME_HEADS) + len(cols)) + "}", "\\hline"]
    heads = ["configuration", "seeds", *TIME_HEADS, *cols]
    lines += [" & ".join(_tex(c) for c in heads) + " \\\\", "\\hline"]
    for r in report["configurations"]:
        spread = report.get("times") == "range"
        cells = [_tex(r["label"]), str(r["n_runs"]), *_time_cells(r, " $\\pm$ ", spread)]
        cells += [_cell(r["metrics"].get(c), r["n_runs"], " $\\pm$ ", "--") for c in cols]  # digits only
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    if report["failed"]:
        lines.append("% failed or unfinished runs (not averaged):")
        lines += [f"% {p['dir']}: {p['status']}: {p['reason']}" for p in report["failed"]]
    return "\n".join(lines) + "\n"


def score_table(splits: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Rows = task/metric, columns = splits (e.g. dev, test); values are fractions shown as %."""
    names = list(splits)
    rows = []
    first = splits[names[0]]
    for task, metrics in first.items():
        if not isinstance(metrics, Mapping):  # an overall number such as the mean "score"
            rows.append((task, [f"{100 * float(splits[s][task]):8.2f}" for s in names]))
            continue
        for key in metrics:
            cells = [
                f"{100 * float(splits[s][task][key]):8.2f}" if key in splits[s].get(task, {}) else "       -"
                for s in names
            ]
            rows.append((f"{task}/{key}", cells))
    width = max([len(r[0]) for r in rows] + [10])
    lines = [f"{'task/metric':<{width}} " + " ".join(f"{s:>8}" for s in names)]
    lines.append("-" * len(lines[0]))
    lines += [f"{label:<{width}} " + " ".join(cells) for label, cells in rows]
    return "\n".join(lines)
