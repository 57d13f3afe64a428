"""Slow: the real MiniLM encoder learning on real EWT text (excerpt and full data)."""

from __future__ import annotations

import json

import pytest

from mtlheads.modes import train

pytestmark = pytest.mark.slow


def test_mtl3_run_with_minilm_learns_on_the_excerpt(tmp_path, make_cfg):
    cfg = make_cfg(
        [
            "taskset=ewt3",  # POS+NER+DEP: CI time (the default ewt5 adds the two tree tasks)
            "logger=none",
            "trainer.max_epochs=4",
            "trainer.enable_progress_bar=false",
            "batch.max_sentences=16",
            f"out_dir={tmp_path}",
        ]
    )
    train.run(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    first, best = metrics["history"][0], metrics["dev"]
    # Real learning, not a constant: POS well above its majority-tag rate, DEP attaching words.
    assert best["pos"]["acc"] > 0.6
    assert best["dep"]["uas"] > 0.3
    assert best["score"] > first["score"]


def test_stl_pos_on_full_ewt(tmp_path, data_root, make_cfg):
    cfg = make_cfg(
        [
            "mode=stl",
            "taskset=pos",
            f"data_dir={data_root}",
            "logger=none",
            "trainer=smoke",
            "trainer.limit_train_batches=40",
            "trainer.limit_val_batches=8",
            "trainer.limit_test_batches=8",
            "trainer.enable_progress_bar=false",
            f"out_dir={tmp_path}",
        ]
    )
    train.run(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # 40 updates on real EWT: far above the most frequent tag (NN, about 13% of tokens)
    assert metrics["test"]["pos"]["acc"] > 0.5
