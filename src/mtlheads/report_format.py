"""The ``mtlheads-report`` tables: Markdown and LaTeX renderings of ``report.json``."""

from __future__ import annotations

NOTE = "Mean ± sample std (ddof=1) over seeds, in %; – = one seed (no std); times in seconds"
TIME_HEADS = ("train s", "s/epoch")  # wall time of the whole training; of one epoch (train + dev)


def _cell(stat: dict | None, n_runs: int, pm: str = " ± ", dash: str = "–") -> str:
    if stat is None:
        return ""
    std = dash if stat["std"] is None else f"{100 * stat['std']:.2f}"
    return f"{100 * stat['mean']:.2f}{pm}{std}" + (f" (n={stat['n']})" if stat["n"] < n_runs else "")


def _seconds(stat: dict | None, pm: str = " ± ") -> str:
    if stat is None:
        return ""
    return f"{stat['mean']:.0f}" + ("" if stat["std"] is None else f"{pm}{stat['std']:.0f}")


def _time_cells(row: dict, pm: str = " ± ") -> list[str]:
    time = row.get("time") or {}
    return [_seconds(time.get("train_seconds"), pm), _seconds(time.get("epoch_seconds"), pm)]


def to_markdown(report: dict) -> str:
    """The report as Markdown: the table, then the failed/unfinished runs."""
    cols = report["columns"]
    lines = [f"# mtlheads report: {report['root']}", "", NOTE + ".", ""]
    lines.append("| " + " | ".join(["configuration", "seeds", *TIME_HEADS, *cols]) + " |")
    lines.append("| --- | ---: |" + " ---: |" * (len(TIME_HEADS) + len(cols)))
    for r in report["configurations"]:
        cells = [r["label"].replace("|", "\\|"), str(r["n_runs"]), *_time_cells(r)]
        cells += [_cell(r["metrics"].get(c), r["n_runs"]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    if report["failed"]:
        lines += ["", "## Failed or unfinished runs (not averaged)", ""]
        lines += [f"- `{p['dir']}`: {p['status']}: {p['reason']}" for p in report["failed"]]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    special = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(c, "\\" + c if c in "&%$#_{}" else c) for c in s)


def to_latex(report: dict) -> str:
    """The report as a LaTeX ``tabular``; failed/unfinished runs as comments below it."""
    cols = report["columns"]
    lines = [f"% mtlheads report: {report['root']}", "% " + NOTE.replace("±", "$\\pm$").replace("–", "--")]
    lines += ["\\begin{tabular}{l r" + " r" * (len(TIME_HEADS) + len(cols)) + "}", "\\hline"]
    heads = ["configuration", "seeds", *TIME_HEADS, *cols]
    lines += [" & ".join(_tex(c) for c in heads) + " \\\\", "\\hline"]
    for r in report["configurations"]:
        cells = [_tex(r["label"]), str(r["n_runs"]), *_time_cells(r, " $\\pm$ ")]
        cells += [_cell(r["metrics"].get(c), r["n_runs"], " $\\pm$ ", "--") for c in cols]  # digits only
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\hline", "\\end{tabular}"]
    if report["failed"]:
        lines.append("% failed or unfinished runs (not averaged):")
        lines += [f"% {p['dir']}: {p['status']}: {p['reason']}" for p in report["failed"]]
    return "\n".join(lines) + "\n"
