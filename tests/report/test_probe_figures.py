"""Probe figures and tables drawn from saved probe results, through ``mtlheads-figures``."""

from __future__ import annotations

import json

import pytest
import torch

from mtlheads.heads.probe_results import ProbeResult
from mtlheads.report.figures import main
from mtlheads.report.probe_figures import delta_table, probe_table

LABELS = ["NN", "IN", "DT", "$", "ARGM_TMP"]  # LaTeX and Markdown specials included
COUNTS = torch.tensor([50, 40, 30, 20, 10])


def _saved(tmp_path, name: str, best: list[float], layer: int = 2) -> str:
    """A 3 × 4 result whose best head (layer, 1) reaches ``best`` per label; other heads get less."""
    correct = (COUNTS * torch.tensor(best) / 2).long().expand(3, 4, 5).clone()
    correct[layer, 1] = (COUNTS * torch.tensor(best)).round().long()
    ProbeResult(kind="pos", labels=LABELS, correct=correct, counts=COUNTS, meta={}).save(tmp_path / name)
    return str(tmp_path / name)


def test_figures_and_tables_from_results_files(tmp_path, capsys):
    stl = [_saved(tmp_path, f"stl{i}", [0.9, 0.8, 1.0, 0.5, 0.3 + 0.1 * i]) for i in range(2)]
    mtl = _saved(tmp_path, "mtl", [0.8, 0.8, 0.9, 0.6, 0.2], layer=0)
    static = _saved(tmp_path, "static", [0.5, 0.4, 0.6, 0.2, 0.1])
    out = tmp_path / "fig"
    main(["probe-dot", stl[0], "--out", str(out / "dot"), "--top", "3"])
    main(["probe-heatmap", stl[0] + ".json", "--out", str(out / "heat")])
    main(
        [
            "probe-delta",
            "--stl",
            *stl,
            "--model",
            f"static={static}",
            f"MTL-5={mtl}",
            "--out",
            str(out / "delta"),
        ]
    )
    main(["probe-table", "--model", *(f"STL={p}" for p in stl), f"MTL-5={mtl}", "--out", str(out / "table")])
    assert "wrote" in capsys.readouterr().out
    for name in ("dot", "heat", "delta"):
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
    delta = json.loads((out / "delta.json").read_text())
    assert delta["labels"] == LABELS and delta["stl"][4] == pytest.approx(35.0)  # mean of the two STL seeds
    assert delta["delta"]["MTL-5"] == pytest.approx([-10.0, 0.0, -10.0, 10.0, -15.0])
    md = (out / "table.md").read_text().splitlines()
    assert md[0] == "| label | count | STL | MTL-5 |"
    assert md[2] == "| NN | 50 | 90.00 ± 0.00 | 80.00 |" and md[5].startswith("| $ | 20 |")
    assert "ARGM\\_TMP" in md[6] and md[7].startswith("| mean (5 labels) | 150 | 71.00 ± 1.41 | 66.00 |")
    tex = (out / "table.tex").read_text()
    assert "\\$ & 20 & 50.00 $\\pm$ 0.00 & 60.00" in tex and "ARGM\\_TMP" in tex and tex.count("\\hline") == 2
    summary = json.loads((out / "table.json").read_text())
    assert summary["seeds"] == {"STL": 2, "MTL-5": 1} and summary["mean"]["top10"]["MTL-5"] == pytest.approx(
        66.0
    )


def test_delta_of_a_label_missing_in_a_model_is_nan(tmp_path):
    stl = ProbeResult.load(_saved(tmp_path, "stl", [0.9, 0.8, 1.0, 0.5, 0.3]))
    other = ProbeResult(kind="pos", labels=LABELS[:2], correct=torch.ones(3, 4, 2, dtype=torch.long),
                        counts=torch.tensor([2, 2]))  # fmt: skip
    table = delta_table([stl], {"x": [other]})
    assert table["delta"]["x"][:2] == pytest.approx([50 - 90.0, 50 - 80.0]) and all(
        v != v for v in table["delta"]["x"][2:]
    )
    assert probe_table({"STL": [stl], "x": [other]}, tmp_path / "t")["accuracy"]["x"][0] == pytest.approx(
        50.0
    )
