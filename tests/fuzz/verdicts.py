"""Counts the verdicts of a recorded corpus run: ``python tests/fuzz/verdicts.py before.jsonl [after.jsonl]``.

Record a run with ``MTLHEADS_FUZZ_RECORD=<file.jsonl> pytest tests/test_errors_fuzz.py`` (add
``PYTHONPATH=<old tree>/src`` to measure older code). Prints the counts per verdict, per kind and, for two
files, the cases whose verdict changed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

VERDICTS = ("clear", "unclear", "traceback", "silently accepted")


def load(path: str) -> dict[str, dict]:
    """The last record of every case in a .jsonl file."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return {r["case"]: r for r in records}


def table(runs: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per verdict, one column per run; then per kind."""
    names = list(runs)
    rows = ["| verdict | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for v in VERDICTS:
        rows.append(
            f"| {v} | "
            + " | ".join(str(sum(r["verdict"] == v for r in runs[n].values())) for n in names)
            + " |"
        )
    rows.append("| cases | " + " | ".join(str(len(runs[n])) for n in names) + " |")
    kinds = sorted({r["kind"] for run in runs.values() for r in run.values()})
    rows += ["", "| kind | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for kind in kinds:
        cells = []
        for n in names:
            counts = Counter(r["verdict"] for r in runs[n].values() if r["kind"] == kind)
            cells.append(", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]))
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(paths: list[str]) -> None:
    runs = {Path(p).stem: load(p) for p in paths}
    print(table(runs))
    if len(runs) == 2:
        (a, before), (b, after) = runs.items()
        print(f"\n| case | {a} | {b} |\n| --- | --- | --- |")
        for case in after:
            print(f"| {case} | {_cell(before.get(case))} | {_cell(after[case])} |")


def _cell(record: dict | None) -> str:
    return "-" if record is None else f"{record['verdict']} (exit {record['code']})"


if __name__ == "__main__":
    main(sys.argv[1:])
