"""mtlheads-figures on synthetic gated runs: colours, averages, correlations checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlheads.report.figures import gate_corr, gate_overlap, gate_tasks, main, overlap_colors, run_consistency


def _run(tmp_path, name, gates, tasks):
    d = tmp_path / name
    d.mkdir()
    torch.save(torch.tensor(gates, dtype=torch.float32), d / "gates.pt")
    (d / "metrics.json").write_text(json.dumps({"tasks": tasks}))
    return str(d)


def test_overlap_colours_black_open_in_all_cyan_only_run_one():
    z1 = np.array([[1.0, 1.0, 0.0]])
    z2 = np.array([[1.0, 0.0, 0.0]])
    z3 = np.array([[1.0, 0.0, 0.0]])
    c = overlap_colors([z1, z2, z3])
    assert c[0, 0].tolist() == [0, 0, 0]  # black: open in all
    assert c[0, 1].tolist() == [0, 1, 1]  # cyan: open only in run 1
    assert c[0, 2].tolist() == [1, 1, 1]  # white: closed everywhere
    with pytest.raises(ValueError, match="exactly 3"):
        overlap_colors([z1, z2])


def test_gate_overlap_writes_png_pdf_and_counts(tmp_path):
    runs = [
        _run(tmp_path, "a", [[1, 1, 0], [0, 0.5, 0]], ["pos"]),
        _run(tmp_path, "b", [[1, 0, 0], [0, 0.2, 0]], ["pos"]),
        _run(tmp_path, "c", [[1, 0, 1], [0, 0.0, 0]], ["pos"]),
    ]
    stats = gate_overlap(runs, tmp_path / "fig" / "overlap")
    assert stats["open_per_run"] == [3, 2, 2] and stats["open_in_all"] == 1 and stats["open_in_any"] == 4
    assert stats["open_in_any_per_layer"] == [3, 1]
    assert (tmp_path / "fig" / "overlap.png").stat().st_size > 0 and (
        tmp_path / "fig" / "overlap.pdf"
    ).is_file()


def test_gate_tasks_averages_every_model_not_only_the_last_task(tmp_path):
    runs = [_run(tmp_path, f"pos{i}", [[1.0, 0.0]], ["pos"]) for i in range(3)]
    runs += [_run(tmp_path, f"srl{i}", [[0.0, 0.0]], ["srl"]) for i in range(3)]
    mean = gate_tasks(runs, tmp_path / "tasks")
    assert mean.tolist() == [[0.5, 0.0]]  # the last task alone would give 0.0
    main(["gate-tasks", *runs, "--out", str(tmp_path / "cli")])
    assert (tmp_path / "cli.png").is_file()


def test_gate_corr_pearson_between_task_means_and_consistency_diagonal(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random((4, 6))
    pos = [base + 0.05 * rng.random((4, 6)) for _ in range(3)]
    ner = [rng.random((4, 6)) for _ in range(3)]
    runs = [_run(tmp_path, f"pos{i}", g.tolist(), ["pos"]) for i, g in enumerate(pos)]
    runs += [_run(tmp_path, f"ner{i}", g.tolist(), ["ner"]) for i, g in enumerate(ner)]
    table = gate_corr(runs, tmp_path / "corr")
    pos_mean = np.mean(np.float32(pos), 0).ravel()
    ner_mean = np.mean(np.float32(ner), 0).ravel()
    assert table["pos"]["ner"] == pytest.approx(np.corrcoef(pos_mean, ner_mean)[0, 1], abs=1e-6)
    assert table["pos"]["pos"] > 0.9 > table["ner"]["ner"]  # consistent runs vs independent noise
    assert "pos" in (tmp_path / "corr.md").read_text() and (tmp_path / "corr.tex").is_file()


def test_run_consistency_is_sqrt_adjusted_r2_of_ols():
    rng = np.random.default_rng(1)
    z1, z2 = rng.random(50), rng.random(50)
    z3 = 0.3 * z1 + 0.5 * z2 + 0.1 * rng.random(50)
    x = np.column_stack([np.ones(50), z1, z2])
    resid = z3 - x @ np.linalg.lstsq(x, z3, rcond=None)[0]
    r2 = 1 - resid.var() / z3.var()
    assert run_consistency([z1, z2, z3]) == pytest.approx(np.sqrt(1 - (1 - r2) * 49 / 47))
