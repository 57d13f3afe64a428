"""Plain-text score tables printed at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping


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
