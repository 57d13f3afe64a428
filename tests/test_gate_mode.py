"""mode=gate end to end on the excerpt with a tiny random BERT: gates trained, saved, logged, reloadable."""

from __future__ import annotations

import json

import torch
from conftest import compose_config

from mtlheads.modes import evaluate, train


def test_gate_mode_trains_saves_and_reloads_the_gates(tmp_path, tiny_bert_dir):
    out = tmp_path / "run"
    cfg = compose_config(
        [
            "mode=gate",
            "taskset=pos",
            f"encoder.name={tiny_bert_dir}",
            "trainer=smoke",
            "trainer.max_epochs=2",
            "logger=tensorboard",
            "optim.gate_lr=0.5",  # large: the gates must visibly move in 8 steps
            f"out_dir={out}",
        ]
    )
    train.run(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    gates = torch.load(out / "gates.pt")
    assert gates.shape == (2, 4) and 0 <= gates.min() and gates.max() <= 1
    summary = metrics["gates"]
    assert summary["open_heads"] == int((gates > 1e-3).sum())
    assert summary["open_per_layer"] == (gates > 1e-3).sum(1).tolist()
    assert [tuple(c) for c in summary["claimed"]] == [tuple(x) for x in (gates > 1e-3).nonzero().tolist()]
    per_eval = sorted((out / "gates").glob("*.pt"), key=lambda p: int(p.stem))
    assert len(per_eval) == 2  # one per dev evaluation
    first = torch.load(per_eval[0])
    initial = 0.3 <= first.min() and first.max() <= 0.7  # xavier init: eval gates start in [0.3, 0.7]
    assert not torch.equal(first, torch.load(per_eval[1])) or not initial  # the gates trained
    assert list(out.rglob("events.out.tfevents.*"))  # gate images + scalars logged

    # mode=eval rebuilds the gated model (strict state dict: the gates must be there) and evaluates it
    ecfg = compose_config(
        ["mode=eval", f"ckpt={metrics['checkpoint']}", "logger=none", f"out_dir={tmp_path / 'eval'}"]
    )
    evaluate.run(ecfg)
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 <= again["test"]["pos"]["acc"] <= 1 and again["test"]["pos"]["sentences"] > 0
