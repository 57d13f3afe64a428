"""Every notebook in notebooks/ runs as a plain script on the committed outputs (so none can rot), and its
not-run-yet sections fill in once runs are saved under docs/runs/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[!_]*.py"))


def _run(notebook: Path, cwd: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "MTLHEADS_NOTEBOOK_OUT": str(out), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(notebook)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"stl_vs_mtl.py", "heads.py"}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_committed_outputs(notebook: Path, tmp_path: Path) -> None:
    proc = _run(notebook, ROOT, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp_path.glob("*.png")), "a notebook shows its finding with a figure"


@pytest.mark.slow
def test_heads_notebook_shows_saved_gate_and_ticket_runs(tmp_path: Path) -> None:
    from mtlheads.report.tickets import summarize

    runs = tmp_path / "docs" / "runs"
    for seed in (1, 2, 3):
        job = runs / "fig1a" / f"{seed - 1}_gate-pos-s{seed}"
        job.mkdir(parents=True)
        gates = [[0.9, 0.0], [0.0 if seed == 2 else 0.4, 0.0]]
        (job / "gates.json").write_text(json.dumps({"shape": [2, 2], "gates": gates}))
        summary = {"open_heads": 2 - (seed == 2), "total_heads": 4, "open_per_layer": [1, int(seed != 2)]}
        metrics = {"mode": "gate", "tasks": ["pos"], "seed": seed, "gates": summary}
        (job / "metrics.json").write_text(json.dumps({**metrics, "dev": {"score": 0.8}}))
    (runs / "fig1a" / "command.txt").write_text("mtlheads -m experiment=stem_cell/fig1a\n")
    (runs / "tickets").mkdir()
    rows = [{"kind": "winning", "level": 0.3, "seed": 1, "dev": 0.7, "train_seconds": 1.0}]
    (runs / "tickets" / "tickets.json").write_text(json.dumps({**summarize(rows), "task": "rte"}))
    (runs / "tickets" / "command.txt").write_text("mtlheads mode=tickets taskset=rte\n")
    proc = _run(ROOT / "notebooks" / "heads.py", tmp_path, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "open in all three 1, in at least one 2 (1, 1 per layer)" in proc.stdout
    assert "Super ticket: winning at 30% sparsity, dev 70.00." in proc.stdout
    assert proc.stdout.count("not run yet") == 2  # probes and GradTS
    assert (tmp_path / "out" / "gates_fig1a_pos.png").is_file()
