"""Training precision: bf16-mixed is the default trainer's (CPU), the smoke trainer stays in float32."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from mtlheads.build import build_encoder, build_model, build_tasks, read_task_data
from mtlheads.checkpoint import read_checkpoint
from mtlheads.fit import fit


def test_default_trainer_is_bf16_mixed_and_smoke_float32(make_cfg) -> None:
    assert make_cfg([])["trainer"]["precision"] == "bf16-mixed"
    assert make_cfg(["trainer=smoke"])["trainer"]["precision"] == "32-true"
    assert make_cfg(["trainer=ddp"])["trainer"]["precision"] == "bf16-mixed"


def test_bf16_mixed_fit_trains_with_float32_weights(tmp_path, tiny_bert_dir, make_cfg) -> None:
    """A POS + CON fit under bf16 autocast: finite losses and scores, float32 weights in the checkpoint."""
    cfg = make_cfg(
        [
            "taskset=[pos,con]",
            f"encoder.name={tiny_bert_dir}",
            "trainer=smoke",
            "trainer.precision=bf16-mixed",
            "logger=none",
            f"out_dir={tmp_path}",
        ]
    )
    pl.seed_everything(cfg.seed, workers=True)
    tasks = build_tasks(cfg)
    encoder, tokenizer = build_encoder(cfg.encoder)
    data = read_task_data(cfg, tasks, tokenizer)
    model = build_model(cfg, tasks, encoder)
    seen, task_loss = [], model.task_loss

    def recording(batch):  # what Lightning's precision plugin wraps each training step in
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return task_loss(batch)

    model.task_loss = recording
    result = fit(cfg, model=model, data=data, tokenizer=tokenizer, out_dir=tmp_path)
    assert seen and all(seen)
    scores = [
        float(v)
        for split in result.results.values()
        for t in split.values()
        if isinstance(t, dict)
        for v in t.values()
    ]
    assert scores and all(math.isfinite(v) for v in scores)
    weights = read_checkpoint(result.best_checkpoint)["state_dict"]
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())
