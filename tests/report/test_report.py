"""mtlheads-report on a fake multirun tree: seeds grouped, mean ± sample std, failures listed apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mtlheads.report.cli import main
from mtlheads.report.collect import FAILURE_FILE


def config(seed: int, temperature: float, job: str) -> dict:
    """A resolved config as train runs write it; seed-dependent entries everywhere they appear."""
    run_name = f"stl-pos-s{seed}"
    return {
        "encoder": {"name": "minilm", "pooling": "mean"},
        "tasks": {"pos": {"task": {"_target_": "mtlheads.tasks.pos.PosTask"}, "train": "ud/train.conllu"}},
        "mode": {"name": "stl", "single_task": True},
        "sampler": {"_target_": "mtlheads.training.sampler.TemperatureSampler", "temperature": temperature},
        "logger": {"_target_": "pytorch_lightning.loggers.WandbLogger", "name": run_name},
        "seed": seed,
        "out_dir": None,
        "run_name": run_name,
        "ckpt": None,
        "hydra": {"run": {"dir": f"multirun/{job}"}, "job": {"num": seed}},
        "trainer": {"max_epochs": 3},
    }


def job(root: Path, name: str, cfg: dict | None, metrics: dict | str | None = None) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    if cfg is not None:
        (d / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    if metrics is not None:
        text = metrics if isinstance(metrics, str) else json.dumps(metrics)
        (d / "metrics.json").write_text(text, encoding="utf-8")
    return d


def metrics(seed: int, dev: float, test: float) -> dict:
    return {
        "mode": "stl",
        "tasks": ["pos"],
        "encoder": "minilm",
        "seed": seed,
        "best_epoch": 1,
        "train_seconds": 100.0 * seed,
        "dev": {"pos": {"acc": dev, "file": "dev.conllu", "sentences": 100}, "score": dev},
        "test": {"pos": {"acc": test}, "score": test},
        "history": [{"epoch": 0, "seconds": 40.0 * seed, "score": 0.5}, {"epoch": 1, "seconds": 60.0 * seed}],
        "checkpoint": "x/best.ckpt",
    }


A_DEV, A_TEST = [0.95, 0.96, 0.98], [0.90, 0.91, 0.92]
B_DEV, B_TEST = [0.80, 0.86], [0.70, 0.75]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    for i, seed in enumerate([1, 2, 3]):
        job(
            root / "a",
            f"{i}_stl-pos-s{seed}",
            config(seed, 0.8, f"a/{i}"),
            metrics(seed, A_DEV[i], A_TEST[i]),
        )
    for i, seed in enumerate([1, 2]):
        job(
            root / "b",
            f"{i}_stl-pos-s{seed}",
            config(seed, 0.5, f"b/{i}"),
            metrics(seed, B_DEV[i], B_TEST[i]),
        )
    # Config A again, but failed or unfinished: none of their numbers may reach the means.
    job(root / "a", "3_stl-pos-s4", config(4, 0.8, "a/3"))  # no metrics.json
    failed = job(root / "a", "4_stl-pos-s5", config(5, 0.8, "a/4"), metrics(5, 0.0, 0.0))
    (failed / FAILURE_FILE).write_text(json.dumps({"type": "RuntimeError", "error": "CUDA out of memory"}))
    job(root / "a", "5_stl-pos-s6", config(6, 0.8, "a/5"), '{"mode": "stl", "dev": {"pos": ')  # truncated
    wandb = root / "a" / "0_stl-pos-s1" / "wandb" / "offline-run" / "files"  # not a job dir
    wandb.mkdir(parents=True)
    (wandb / "config.yaml").write_text("wandb_version: 1\n")
    return root


def test_report(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tree)]) == 0
    report = json.loads((tree / "report.json").read_text())
    assert report["columns"] == ["dev/pos/acc", "dev/score", "test/pos/acc", "test/score"]
    b, a = report["configurations"]  # sorted by label: B (temperature 0.5) first
    assert [b["label"], a["label"]] == ["stl pos minilm temperature=0.5", "stl pos minilm temperature=0.8"]
    assert (a["n_runs"], a["seeds"], b["n_runs"], b["seeds"]) == (3, [1, 2, 3], 2, [1, 2])
    assert (a["overrides"], len(a["runs"])) == ({"temperature": "0.8"}, 3)
    # By hand, ddof=1: A dev 0.95, 0.96, 0.98 -> mean 0.963333, deviations (-1/75, -1/300, 1/60),
    # squares sum to 0.00046667, / (3 - 1) -> std 0.0152753. A test 0.90, 0.91, 0.92 -> 0.91 ± 0.01.
    # B dev 0.80, 0.86 -> 0.83 ± sqrt(2 * 0.03^2) = 0.0424264; B test 0.70, 0.75 -> 0.725 ± 0.0353553.
    expected = [
        (a, "dev/pos/acc", 0.9633333, 0.0152753),
        (a, "dev/score", 0.9633333, 0.0152753),
        (a, "test/pos/acc", 0.91, 0.01),
        (b, "dev/pos/acc", 0.83, 0.0424264),
        (b, "test/score", 0.725, 0.0353553),
    ]
    for row, col, mean, std in expected:
        stat = row["metrics"][col]
        assert stat["mean"] == pytest.approx(mean, abs=1e-7) and stat["std"] == pytest.approx(std, abs=1e-7)
        assert stat["n"] == row["n_runs"]
    # Wall times: A trains 100, 200, 300 s -> 200 ± 100, epochs average 50 s x seed -> 100 ± 50;
    # B (seeds 1, 2) -> 150 ± 70.71 and 75 ± 35.36.
    assert a["time"]["train_seconds"] == {"mean": 200.0, "std": 100.0}
    assert a["time"]["epoch_seconds"] == {"mean": 100.0, "std": 50.0}
    assert b["time"]["train_seconds"]["std"] == pytest.approx(70.7106781)
    failed = {p["dir"]: (p["status"], p["reason"]) for p in report["failed"]}
    assert failed == {
        "a/3_stl-pos-s4": ("unfinished", "no metrics.json (running, or crashed)"),
        "a/4_stl-pos-s5": ("failed", "RuntimeError: CUDA out of memory"),
        "a/5_stl-pos-s6": ("corrupt", failed["a/5_stl-pos-s6"][1]),
    }
    assert failed["a/5_stl-pos-s6"][1].startswith("metrics.json does not parse")

    md = (tree / "report.md").read_text()
    assert (
        "| configuration | seeds | train s | s/epoch | dev/pos/acc | dev/score | test/pos/acc | test/score |"
        in md
    )
    assert (
        "| stl pos minilm temperature=0.8 | 3 | 200 ± 100 | 100 ± 50 | 96.33 ± 1.53 | 96.33 ± 1.53 "
        "| 91.00 ± 1.00 | 91.00 ± 1.00 |" in md
    )
    assert (
        "| stl pos minilm temperature=0.5 | 2 | 150 ± 71 | 75 ± 35 | 83.00 ± 4.24 | 83.00 ± 4.24 "
        "| 72.50 ± 3.54 | 72.50 ± 3.54 |" in md
    )
    assert all(f"`{d}`" in md for d in failed)
    tex = (tree / "report.tex").read_text()
    assert (
        "stl pos minilm temperature=0.8 & 3 & 200 $\\pm$ 100 & 100 $\\pm$ 50 & 96.33 $\\pm$ 1.53 "
        "& 96.33 $\\pm$ 1.53 & 91.00 $\\pm$ 1.00" in tex
    )
    assert (
        "dev/pos/acc" in tex
        and "\\begin{tabular}{l r r r r r r r}" in tex
        and "% a/3_stl-pos-s4: unfinished" in tex
    )
    assert capsys.readouterr().out == md


def test_one_seed_out_dir_and_eval_runs(tmp_path: Path) -> None:
    root, out = tmp_path / "runs", tmp_path / "out"
    job(root, "x", config(7, 0.8, "x"), metrics(7, 0.9731, 0.5))
    # an eval run: no "tasks"/"encoder", strings and ints next to the metrics, config under .hydra/
    ev = job(
        root, "ev", None, {"mode": "eval", "test": {"ner": {"f1": 0.5, "file": "t.txt", "sentences": 3}}}
    )
    (ev / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"mode": {"name": "eval"}, "ckpt": "c"}))
    assert main([str(root), "--out", str(out)]) == 0
    assert not (root / "report.md").exists() and (out / "report.tex").is_file()
    report = json.loads((out / "report.json").read_text())
    assert [c["label"] for c in report["configurations"]] == ["eval ner", "stl pos minilm"]
    assert report["configurations"][1]["metrics"]["dev/pos/acc"] == {"mean": 0.9731, "std": None, "n": 1}
    assert "test/ner/f1" in report["columns"] and not any("sentences" in c for c in report["columns"])
    assert "| stl pos minilm | 1 | 700 | 350 | 97.31 ± – |" in (out / "report.md").read_text()


def test_nothing_to_report(tmp_path: Path) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert main([str(tmp_path)]) == 1
    assert not (tmp_path / "report.md").exists()


def test_label_shows_differing_keys_escaped_in_latex(tmp_path: Path) -> None:
    for epochs in (3, 10):
        cfg = config(1, 0.8, f"e{epochs}") | {"trainer": {"max_epochs": epochs}}
        job(tmp_path, f"e{epochs}", cfg, metrics(1, 0.5, 0.5))
    assert main([str(tmp_path)]) == 0
    labels = [c["label"] for c in json.loads((tmp_path / "report.json").read_text())["configurations"]]
    assert labels == ["stl pos minilm max_epochs=10", "stl pos minilm max_epochs=3"]
    assert (
        "stl pos minilm max\\_epochs=3 & 1 & 100 & 50 & 50.00 $\\pm$ --"
        in (tmp_path / "report.tex").read_text()
    )


def test_a_job_rerun_with_resume_is_the_same_configuration(tmp_path: Path) -> None:
    for seed, resume in ((1, False), (2, True)):
        cfg = config(seed, 0.8, f"s{seed}") | {"resume": resume}
        job(tmp_path, f"s{seed}", cfg, metrics(seed, 0.5, 0.6))
    assert main([str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "report.json").read_text())["configurations"]
    assert (row["label"], row["n_runs"]) == ("stl pos minilm", 2)
