"""mtlheads-report records each configuration's differences from the default config, and time spreads."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import compose_config
from omegaconf import OmegaConf

from mtlheads.report.cli import main
from mtlheads.report.defaults import differences

# The Figure 1a runs of docs/gates.md: the preset plus what its command line set.
FIG1A = ["experiment=stem_cell/fig1a", "trainer.max_epochs=2", "optim.gate_lr=1e-2", "heads.target_heads=0.3"]
FIG1A_CHANGED = {  # what the preset (encoder lr) and the command line changed, nothing else
    "optim.encoder_lr": "1e-05",
    "optim.gate_lr": "0.01",
    "heads.target_heads": "0.3",
    "trainer.max_epochs": "2",
}


def _run(root: Path, name: str, overrides: list[str], seed: int, seconds: float) -> dict:
    """A job dir as a run leaves it: the resolved config and a small metrics.json."""
    cfg = OmegaConf.to_container(compose_config([*overrides, f"seed={seed}"]), resolve=True)
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    metrics = {
        "mode": cfg["mode"]["name"],
        "tasks": list(cfg["tasks"]),
        "encoder": cfg["encoder"]["name"],
        "seed": seed,
        "train_seconds": seconds,
        "dev": {"pos": {"acc": 0.8 + seed / 100}, "score": 0.8 + seed / 100},
        "history": [{"epoch": 0, "seconds": seconds / 2}, {"epoch": 1, "seconds": seconds / 2}],
    }
    (d / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return cfg


def test_report_records_what_the_preset_and_command_line_changed(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    (data / "ewt").mkdir(parents=True)
    sweep = tmp_path / "fig1a"
    common = [*FIG1A, f"data_dir={data}", "trainer.enable_progress_bar=false", "logger=csv"]
    for i, (seed, seconds) in enumerate([(1, 649.0), (2, 600.0), (3, 700.0)]):
        _run(sweep, f"{i}_gate-pos-s{seed}", [*common, f"out_dir={sweep}/{i}"], seed, seconds)
    assert main([str(sweep), "--times", "range"]) == 0
    report = json.loads((sweep / "report.json").read_text())
    (row,) = report["configurations"]  # the three seeds are still one configuration
    assert row["n_runs"] == 3 and row["seeds"] == [1, 2, 3]
    assert row["overrides"] == {}  # nothing tells configurations apart...
    assert row["from_default"] == {"data_dir": str(data), **FIG1A_CHANGED}  # ...but this is what was set
    assert row["time"]["spread"]["train_seconds"] == {"min": 600.0, "median": 649.0, "max": 700.0, "n": 3}
    md = (sweep / "report.md").read_text()
    assert "| gate pos minilm | 3 | 600 / 649 / 700 | 300 / 324 / 350 |" in md
    assert "min / median / max over seeds" in md
    assert "## Differences from the default config" in md
    assert all(f"`{k}={v}`" in md for k, v in FIG1A_CHANGED.items())
    assert capsys.readouterr().out == md
    # the default time columns are still mean ± std
    assert main([str(sweep)]) == 0
    assert "| gate pos minilm | 3 | 650 ± 50 | 325 ± 25 |" in (sweep / "report.md").read_text()


def test_differences_for_other_task_sets_encoders_and_groups() -> None:
    plain = compose_config(["mode=stl", "taskset=pos"])
    assert differences(OmegaConf.to_container(plain, resolve=True)) == {}
    cfg = compose_config(
        ["taskset=ewt3", "balancer=moving_average", "encoder=roberta-base"] + ["sampler=uniform"]
    )
    found = differences(OmegaConf.to_container(cfg, resolve=True))
    assert found == {"balancer": "MovingAverageBalancer", "sampler": "UniformSampler"}
    cfg = compose_config(["taskset=[pos,rte]", "+trainer.limit_train_batches=0.1", "batch.max_sentences=32"])
    found = differences(OmegaConf.to_container(cfg, resolve=True))
    assert found == {"trainer.limit_train_batches": "0.1", "batch.max_sentences": "32"}


def test_a_config_the_package_cannot_compose_is_reported_not_fatal(tmp_path: Path) -> None:
    d = tmp_path / "old" / "run"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"mode": {"name": "stl"}, "tasks": {"nope": {}}}))
    (d / "metrics.json").write_text(json.dumps({"mode": "stl", "tasks": ["nope"], "dev": {"score": 0.5}}))
    assert main([str(tmp_path / "old")]) == 0
    (row,) = json.loads((tmp_path / "old" / "report.json").read_text())["configurations"]
    assert list(row["from_default"]) == ["?"] and "not composed" in row["from_default"]["?"]
