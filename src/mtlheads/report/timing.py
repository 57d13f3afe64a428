"""Timing tables that state their spread (``python -m mtlheads.report.timing <prune_speed.json>``).

A median of three repeats on a shared machine can hide a repeat that showed nothing: the prune-speed table
gives, per pruning level, the min / median / max over the paired repeats (round r of every variant ran
back to back) of the time per batch, of the speedup and of the share of the FLOP-ideal saving.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _spread(values: list[float], fmt: str) -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def of_ideal(speedup: float, ideal: float) -> float:
    """The share of the FLOP-predicted time saving that shows: ``(1 - 1/speedup) / (1 - 1/ideal)``."""
    return (1 - 1 / speedup) / (1 - 1 / ideal)


def prune_speed_table(result: dict) -> str:
    """The Markdown table of a ``benchmarks/prune_speed.py`` JSON: min / median / max over the rounds."""
    lines = [
        "| pruned | heads | ms/batch (min / median / max) | speedup (min / median / max) | ideal "
        "| of ideal (min / median / max) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for pct, variant in sorted(result["variants"].items(), key=lambda kv: int(kv[0])):
        if "ms_per_round" in variant:  # variants alternated batch by batch in one process
            ms, speedups, heads = (
                variant["ms_per_round"],
                variant["speedup_per_round"],
                variant["alone"]["heads_kept"],
            )
        else:  # older files: one child process per variant and repeat
            ms, speedups = [r["ms_per_batch"] for r in variant["runs"]], variant["speedup_per_repeat"]
            heads = variant["runs"][0]["heads_kept"]
        ideal = variant["ideal_speedup"]
        share = "–" if ideal == 1 else _spread([100 * of_ideal(s, ideal) for s in speedups], "{:.0f}%")
        cells = [f"{pct}%", str(heads), _spread(ms, "{:.1f}")]
        cells += [_spread(speedups, "{:.2f}x"), f"{ideal:.2f}x", share]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mtlheads.report.timing <prune_speed.json>", file=sys.stderr)
        return 2
    result = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    print(f"{result['date']}, {result['cpu']}, {result['threads']} thread(s): `{result['command']}`\n")
    print(prune_speed_table(result), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
