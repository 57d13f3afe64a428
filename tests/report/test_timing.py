"""Timing tables state their spread: the prune-speed table's min / median / max over paired repeats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlheads.report.timing import of_ideal, prune_speed_table

ROOT = Path(__file__).resolve().parents[2]


def _variant(ms: list[float], speedups: list[float], ideal: float, heads: int) -> dict:
    runs = [{"ms_per_batch": m, "heads_kept": heads} for m in ms]
    return {"runs": runs, "speedup_per_repeat": speedups, "ideal_speedup": ideal}


def test_prune_speed_table_gives_min_median_max_over_repeats() -> None:
    result = {
        "variants": {
            "0": _variant([100.0, 120.0, 90.0], [1.0, 1.0, 1.0], 1.0, 72),
            "50": _variant([80.0, 125.0, 70.0], [1.25, 0.96, 1.5], 1.25, 36),
        }
    }
    # of ideal by hand: (1 - 1/1.25) / 0.2 = 100 %, (1 - 1/0.96) / 0.2 = -20.8 %, (1 - 1/1.5) / 0.2 = 167 %
    assert of_ideal(1.5, 1.25) == pytest.approx(5 / 3)
    assert prune_speed_table(result).splitlines()[2:] == [
        "| 0% | 72 | 90.0 / 100.0 / 120.0 | 1.00x / 1.00x / 1.00x | 1.00x | – |",
        "| 50% | 36 | 70.0 / 80.0 / 125.0 | 0.96x / 1.25x / 1.50x | 1.25x | -21% / 100% / 167% |",
    ]


def test_prune_speed_table_reads_in_process_rounds() -> None:
    """The in-process format: per-round times and speedups, heads from the variant's own child run."""
    result = {
        "variants": {
            "0": {
                "ms_per_round": [10.0, 12.0],
                "speedup_per_round": [1.0, 1.0],
                "ideal_speedup": 1.0,
                "alone": {"heads_kept": 72},
            },
            "50": {
                "ms_per_round": [8.0, 6.0],
                "speedup_per_round": [1.25, 2.0],
                "ideal_speedup": 1.25,
                "alone": {"heads_kept": 36},
            },
        }
    }
    # of ideal: (1 - 1/1.25) / 0.2 = 100 %, (1 - 1/2) / 0.2 = 250 %; the median of two is their mean
    assert prune_speed_table(result).splitlines()[2:] == [
        "| 0% | 72 | 10.0 / 11.0 / 12.0 | 1.00x / 1.00x / 1.00x | 1.00x | – |",
        "| 50% | 36 | 6.0 / 7.0 / 8.0 | 1.25x / 1.62x / 2.00x | 1.25x | 100% / 175% / 250% |",
    ]


def test_benchmarks_readme_prune_table_is_the_committed_results_spread() -> None:
    """benchmarks/README.md shows the spread of benchmarks/results/prune_speed.json and the machine load."""
    result = json.loads((ROOT / "benchmarks" / "results" / "prune_speed.json").read_text(encoding="utf-8"))
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert prune_speed_table(result) in readme, "rerun: python -m mtlheads.report.timing <prune_speed.json>"
    section = readme[readme.index("## Head pruning speed") : readme.index("## Training speed per task")]
    assert "min / median / max" in section and "beside one other 1-thread training job" in section
