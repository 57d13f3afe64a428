"""``mtlheads-report`` on a hyperparameter search: trials sorted by the objective, searched keys as columns,
failed and unfinished trials listed, a plot per searched key; ordinary multiruns keep their report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlheads.report import cli, search, search_output

OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def _job(root: Path, name: str, overrides: list[str], score: float | None = None, **files: dict) -> Path:
    """A job dir as Hydra and mode=stl leave it: .hydra/overrides.yaml, metrics.json when finished."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / "config.yaml").write_text(yaml.safe_dump({"mode": {"name": "stl"}, "seed": 1, "name": name}))
    if score is not None:
        metrics = {"mode": "stl", "tasks": ["pos"], "seed": 1, "train_seconds": 12.0}
        metrics |= {
            "dev": {"pos": {"acc": score}, "score": score},
            "test": {"pos": {"acc": score - 0.1}, "score": score - 0.1},
        }
        (d / "metrics.json").write_text(json.dumps(metrics))
    for file, content in files.items():
        (d / file.replace("_", ".")).write_text(json.dumps(content))
    return d


def _optuna_sweep(root: Path, direction: str = "maximize") -> Path:
    params = {"optim.encoder_lr": "tag(log, interval(1e-5, 1e-3))", "trainer.max_epochs": "choice(2, 3)"}
    saved = {
        "hydra": {
            "sweeper": {"_target_": OPTUNA, "direction": direction, "params": params, "study_name": "x"},
            "overrides": {"task": ["+hparams_search=x", "data_dir=../data"]},
        }
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / search.MULTIRUN_FILE).write_text(yaml.safe_dump(saved))
    fixed = ["+hparams_search=x", "data_dir=../data"]
    for name, lr, epochs, score in [
        ("a", "1e-05", 2, 0.70),
        ("b", "0.0003", 3, 0.90),
        ("c", "5e-05", 2, 0.80),
    ]:
        _job(root, name, [f"optim.encoder_lr={lr}", f"trainer.max_epochs={epochs}", *fixed], score)
    failure = {"type": "FloatingPointError", "error": "loss is nan", "message": "raised at model.py:1"}
    _job(root, "d", ["optim.encoder_lr=0.001", "trainer.max_epochs=3", *fixed], failure_json=failure)
    _job(root, "e", ["optim.encoder_lr=2e-05", "trainer.max_epochs=2", *fixed, "resume=true"])  # killed
    return root


def _rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_optuna_sweep_is_reported_as_a_search_sorted_by_the_objective(tmp_path, capsys):
    sweep = _optuna_sweep(tmp_path / "sweep")
    assert cli.main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert printed == (sweep / "search.md").read_text()
    header, *rows = _rows(printed)
    keys = ["optim.encoder_lr", "trainer.max_epochs"]
    assert header == ["rank", "trial", *keys, "dev/score", "test/score", "train s", "status"]
    assert [r[:4] for r in rows] == [
        ["1", "`b`", "0.0003", "3"],
        ["2", "`c`", "5e-05", "2"],
        ["3", "`a`", "1e-05", "2"],
        ["–", "`d`", "0.001", "3"],
        ["–", "`e`", "2e-05", "2"],
    ]
    assert rows[0][4:7] == ["90.00", "80.00", "12"] and rows[0][7] == "finished"
    assert rows[3][7] == "failed: FloatingPointError: loss is nan" and rows[4][7] == "unfinished"
    assert "3 finished, 1 failed, 1 unfinished" in printed and "Best: `b`" in printed

    report = json.loads((sweep / "search.json").read_text())
    assert report["keys"] == ["optim.encoder_lr", "trainer.max_epochs"] and report["direction"] == "maximize"
    assert report["log_keys"] == ["optim.encoder_lr"] and report["best"]["dir"] == "b"
    assert report["best"]["argv"][:2] == ["optim.encoder_lr=0.0003", "trainer.max_epochs=3"]
    assert (sweep / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep / "search.pdf").read_bytes()[:5] == b"%PDF-"
    assert not list(sweep.glob(".search*"))  # no temp file left behind
    # The ordinary report is still written next to it.
    assert json.loads((sweep / "report.json").read_text())["failed"]


def test_a_minimizing_search_puts_the_lowest_objective_first(tmp_path):
    sweep = _optuna_sweep(tmp_path / "sweep", direction="minimize")
    report = search.build_search_report(sweep)
    assert [t["dir"] for t in report["trials"]][:3] == ["a", "c", "b"] and report["direction"] == "minimize"
    assert [t["dir"] for t in search.build_search_report(sweep, minimize=False)["trials"]][:3] == [
        "b",
        "c",
        "a",
    ]


def test_wandb_sweep_runs_are_a_search_with_the_keys_that_differ(tmp_path, capsys):
    root = tmp_path / "wandb-sweeps" / "abc123"
    fixed = ["mode=stl", "taskset=pos", "logger.offline=false"]
    for run, lr, score in [("r1", 1e-5, 0.5), ("r2", 1e-3, 0.7), ("r3", 1e-4, 0.6)]:
        _job(root, run, [*fixed, f"optim.encoder_lr={lr}", "optim.decoder_lr=0.001"], score)
    assert not search.is_search(root)  # no Optuna sweep: only with --search
    assert cli.main([str(root)]) == 0 and not (root / "search.md").exists()
    capsys.readouterr()
    assert cli.main([str(root), "--search", "--objective", "dev/pos/acc"]) == 0
    header, *rows = _rows(capsys.readouterr().out)
    assert header[2:5] == ["optim.encoder_lr", "dev/pos/acc", "dev/score"]
    assert [r[1] for r in rows] == ["`r2`", "`r3`", "`r1`"]
    report = json.loads((root / "search.json").read_text())
    assert report["keys"] == ["optim.encoder_lr"] and report["log_keys"] == ["optim.encoder_lr"]
    keys = search.build_search_report(root, keys=["optim.decoder_lr"])["keys"]
    assert keys == ["optim.decoder_lr"]


def test_an_ordinary_multirun_keeps_its_report(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    basic = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": {"_target_": basic}}}))
    for seed, score in [(1, 0.5), (2, 0.7)]:
        _job(sweep, f"{seed - 1}_stl-pos-s{seed}", ["mode=stl", f"seed={seed}"], score)
    assert cli.main([str(sweep)]) == 0
    assert capsys.readouterr().out == (sweep / "report.md").read_text()
    assert not list(sweep.glob("search*"))


def test_plots_are_written_atomically(tmp_path, monkeypatch):
    import matplotlib.figure

    sweep = _optuna_sweep(tmp_path / "sweep")
    search_output.write_search_report(sweep)
    before = (sweep / "search.png").read_bytes()

    def broken(self, file, **kwargs):  # a crash halfway through writing the image
        file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        search_output.write_search_report(sweep)
    assert (sweep / "search.png").read_bytes() == before and not list(sweep.glob(".search*"))
