"""ProbeResult: best heads, weighted accuracy, and its three files (.pt, .csv, .json)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from mtlheads.heads.probe_results import ProbeResult


def _result() -> ProbeResult:
    counts = torch.tensor([4, 2, 1])
    correct = torch.zeros(2, 3, 3, dtype=torch.long)  # (L, H, C)
    correct[1, 2] = torch.tensor([3, 0, 1])  # best for label a (3/4) and, tied first, for c
    correct[0, 1] = torch.tensor([1, 2, 1])  # best for b (2/2); first maximum for c
    return ProbeResult(
        kind="pos", labels=["a", "b", "c"], correct=correct, counts=counts, meta={"model": "m"}
    )


def test_best_heads_weighted_accuracy_and_means():
    r = _result()
    layer, head, acc = r.best()
    assert layer.tolist() == [1, 0, 0] and head.tolist() == [2, 1, 1] and acc.tolist() == [0.75, 1.0, 1.0]
    torch.testing.assert_close(r.weighted[1, 2], torch.tensor(4 / 7, dtype=torch.float64))
    assert r.mean_best() == pytest.approx(2.75 / 3) and r.mean_best(2) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="labels"):
        ProbeResult(kind="pos", labels=["a"], correct=r.correct, counts=r.counts)


def test_save_and_load_round_trip(tmp_path):
    r = _result()
    written = r.save(tmp_path / "out" / "probe_pos")
    assert [p.name for p in written] == ["probe_pos.pt", "probe_pos.csv", "probe_pos.json"]
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temp file left behind
    for path in (tmp_path / "out" / "probe_pos", written[0], written[2], tmp_path / "out"):
        back = ProbeResult.load(path)
        assert (
            back.labels == r.labels and torch.equal(back.correct, r.correct) and back.meta == {"model": "m"}
        )
    raw = torch.load(written[0], weights_only=True)
    assert raw["accuracy"].shape == (2, 3, 3) and raw["kind"] == "pos"
    rows = list(csv.DictReader(written[1].open()))
    assert len(rows) == 2 * 3 * 3 and list(rows[0]) == ["layer", "head", "label", "count", "accuracy"]
    row = next(x for x in rows if (x["layer"], x["head"], x["label"]) == ("2", "3", "a"))  # 1-based
    assert row["count"] == "4" and float(row["accuracy"]) == 0.75
    summary = json.loads(written[2].read_text())
    assert summary["index_base"] == 1 and summary["counts"] == {"a": 4, "b": 2, "c": 1}
    assert summary["best_heads"][0] == {"label": "a", "count": 4, "layer": 2, "head": 3, "accuracy": 0.75}
    assert summary["best_weighted_head"]["layer"] == 1 and summary["best_weighted_head"]["head"] == 2
    assert summary["mean_best_accuracy_top10"] == pytest.approx(2.75 / 3)
    assert len(summary["weighted_accuracy"]) == 2 and len(summary["weighted_accuracy"][0]) == 3
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a probe result"):
        ProbeResult.load(tmp_path / "bad.pt")


def test_load_without_the_pt_file_reads_the_csv_and_json(tmp_path):
    """docs/runs keeps only the CSV and JSON: they give back the exact counts (accuracy has 6 decimals)."""
    gen = torch.Generator().manual_seed(0)
    counts = torch.tensor([4999, 3001, 7])
    correct = (torch.rand(3, 4, 3, generator=gen) * counts).long()  # awkward fractions of large counts
    r = ProbeResult(kind="dep", labels=["x", "y", "z"], correct=correct, counts=counts, meta={"model": "m"})
    r.save(tmp_path / "probe_dep")
    (tmp_path / "probe_dep.pt").unlink()
    for path in (tmp_path / "probe_dep", tmp_path / "probe_dep.csv", tmp_path / "probe_dep.json"):
        back = ProbeResult.load(path)
        assert torch.equal(back.correct, correct) and torch.equal(back.counts, counts)
        assert back.labels == r.labels and back.kind == "dep" and back.meta == {"model": "m"}
