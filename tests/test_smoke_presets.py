"""CI smoke presets (conf/experiment/smoke/<mode>.yaml): every file there runs through the real CLI.

Training presets run first; a preset that loads a checkpoint names the training preset that makes it in a
line ``# smoke: ckpt=<preset>`` and runs on that preset's run dir. Adding a mode's preset is adding its
file: these tests find it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import compose_config, run_cli

from mtlheads.launch.resolvers import CONF_DIR

SMOKE = Path(CONF_DIR) / "experiment" / "smoke"
PRESETS = sorted(p.stem for p in SMOKE.glob("*.yaml"))
MODES_NOW = {"stl", "mtl", "gate", "eval", "prune", "probe", "tickets", "gradts"}
EXCERPT = Path(__file__).resolve().parents[1] / "src" / "mtlheads" / "resources" / "ewt"


def ckpt_from(name: str) -> str | None:
    """The training preset whose run dir preset ``name`` loads (its ``# smoke: ckpt=<preset>`` line)."""
    found = re.search(r"^# smoke: ckpt=(\S+)", (SMOKE / f"{name}.yaml").read_text(), re.MULTILINE)
    return found.group(1) if found else None


def _order() -> tuple[list[str], list[str]]:
    """(training presets, presets that load a checkpoint)."""
    consumers = [p for p in PRESETS if ckpt_from(p)]
    return [p for p in PRESETS if p not in consumers], consumers


def _check(name: str, run: Path) -> None:
    """What each preset leaves in its run dir (a preset added later: no failure.json)."""
    assert not (run / "failure.json").exists(), (run / "failure.json").read_text()
    if name == "prune":
        summary = json.loads((run / "prune.json").read_text())
        assert summary["open_heads"] <= summary["total_heads"] and (run / "model.pt").is_file()
        return
    if name == "probe":
        probed = json.loads((run / "probe.json").read_text())["tasks"]["pos"]
        assert probed["labels"] > 0 and 0 < probed["mean_best"] <= 1 and (run / "probe_pos.csv").is_file()
        return
    if name == "tickets":  # the dense model and the winning ticket at 50 %, rewound
        summary = json.loads((run / "tickets.json").read_text())
        assert {(r["kind"], r["level"]) for r in summary["table"]} == {("dense", 0.0), ("winning", 0.5)}
        assert summary["super_ticket"]["level"] == 0.5 and (run / "super_ticket.json").is_file()
        return
    if name == "gradts":  # every stage's file, main task POS with NER as the one candidate
        assert json.loads((run / "correlate" / "tau.json").read_text())
        assert json.loads((run / "trial" / "pos" / "trial.json").read_text())
        assert json.loads((run / "fg" / "pos" / "fg.json").read_text())
        assert set(json.loads((run / "gradts.json").read_text())) == {"pos"}
        return
    if name not in MODES_NOW:
        return
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mode"] == name
    if name == "eval":
        assert set(metrics["test"]) == {"pos"} and metrics["test"]["pos"]["sentences"] > 0
        return
    assert metrics["tasks"] == (["pos", "ner", "dep", "con", "srl"] if name == "mtl" else ["pos"])
    assert metrics["epochs_run"] == 1 and (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "gates.pt").is_file() == (name == "gate")


def test_each_mode_has_a_smoke_preset_on_the_shipped_excerpt():
    assert set(PRESETS) >= MODES_NOW
    training, consumers = _order()
    assert {c: ckpt_from(c) for c in consumers} == {"eval": "stl", "prune": "gate", "probe": "stl"}
    for name in PRESETS:
        cfg = compose_config([f"experiment=smoke/{name}"])
        assert cfg.mode.name == name and cfg.data_dir is None  # the shipped excerpt
        assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 4
        if name in training:
            assert Path(cfg.ewt_dir) == EXCERPT and all(Path(t.train).is_file() for t in cfg.tasks.values())


def test_smoke_presets_run_in_order_through_the_cli(tmp_path, tiny_bert_dir):
    """All presets on a tiny encoder: the training ones as one multirun, then each checkpoint user."""
    training, consumers = _order()
    sweep = tmp_path / "train"
    args = ["-m", "experiment=" + ",".join(f"smoke/{p}" for p in training), f"encoder={tiny_bert_dir}"]
    args += [f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"]
    proc = run_cli(args, tmp_path, timeout=600, OMP_NUM_THREADS="1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    runs = {name: sweep / str(i) for i, name in enumerate(training)}  # jobs in the order listed
    for name in training:
        _check(name, runs[name])
    for name in consumers:
        ckpt = runs[ckpt_from(name)]
        args = [f"experiment=smoke/{name}", f"ckpt={ckpt}", f"hydra.run.dir={tmp_path / name}"]
        proc = run_cli(args, tmp_path, timeout=600, OMP_NUM_THREADS="1")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        _check(name, tmp_path / name)


@pytest.mark.slow
def test_smoke_presets_as_shipped_each_run_alone_with_minilm(tmp_path):
    """What CI runs: `mtlheads experiment=smoke/<mode>` with the real MiniLM, one process per preset."""
    training, consumers = _order()
    seconds = {}
    for name in training + consumers:
        args = [f"experiment=smoke/{name}", f"hydra.run.dir={tmp_path / name}"]
        if name in consumers:
            args.append(f"ckpt={tmp_path / ckpt_from(name)}")
        started = time.monotonic()
        proc = run_cli(args, tmp_path, timeout=600)
        seconds[name] = time.monotonic() - started
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        _check(name, tmp_path / name)
    # Under a minute each on 2 idle cores (docs/sweeps.md); the bound leaves room for a busy CI machine.
    assert max(seconds.values()) < 180, seconds
