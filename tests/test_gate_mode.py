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
    # the gates trained: the eval gates of the two dev evaluations differ, and the final ones are the best
    # epoch's (gates.pt = the gates of the checkpoint that is tested)
    first, second = torch.load(per_eval[0]), torch.load(per_eval[1])
    assert (first - second).abs().max() > 1e-3
    assert torch.equal(gates, (first, second)[metrics["best_epoch"]])
    assert list(out.rglob("events.out.tfevents.*"))  # gate images + scalars logged

    # mode=eval rebuilds the gated model (strict state dict: the gates must be there) and evaluates it
    ecfg = compose_config(
        ["mode=eval", f"ckpt={metrics['checkpoint']}", "logger=none", f"out_dir={tmp_path / 'eval'}"]
    )
    evaluate.run(ecfg)
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 <= again["test"]["pos"]["acc"] <= 1 and again["test"]["pos"]["sentences"] > 0


def _gate_run(out, tiny_bert_dir, lam: float) -> dict:
    cfg = compose_config(
        ["mode=gate", "taskset=pos", f"encoder.name={tiny_bert_dir}", "trainer=smoke", "trainer.max_epochs=2"]
        + [f"heads.lam={lam}", "optim.gate_lr=0.5", "logger=none", f"out_dir={out}"]
    )
    train.run(cfg)
    return json.loads((out / "metrics.json").read_text())["gates"]


def test_l0_training_closes_heads_under_a_large_lambda(tmp_path, tiny_bert_dir):
    """λ = 50 makes the penalty's gradient dominate the task's: 8 Adam steps of 0.5 take every log α from
    Xavier's [-0.78, 0.78] below -2.398, where the eval gate is exactly 0. With λ = 0 (same seed, same steps)
    heads stay open, so the closing is the penalty's doing."""
    closed = _gate_run(tmp_path / "lam50", tiny_bert_dir, 50.0)
    control = _gate_run(tmp_path / "lam0", tiny_bert_dir, 0.0)
    assert closed["total_heads"] == control["total_heads"] == 8
    assert closed["open_heads"] == 0 and closed["claimed"] == [] and closed["expected_open"] < 1.0
    assert control["open_heads"] >= 4 and control["expected_open"] > closed["expected_open"] + 3


def test_prune_mode_removes_closed_heads_and_keeps_the_gated_outputs(tmp_path, tiny_bert_dir):
    from mtlheads.build import read_split
    from mtlheads.checkpoint import load_model, load_pruned_model
    from mtlheads.modes import prune
    from mtlheads.training.data import eval_loader

    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["mode=gate", "taskset=pos", f"encoder.name={tiny_bert_dir}", "trainer=smoke", "logger=none"]
        + [f"out_dir={run_dir}"]
    )
    train.run(cfg)
    ckpt = json.loads((run_dir / "metrics.json").read_text())["checkpoint"]
    gated, tokenizer, train_cfg = load_model(ckpt)
    with torch.no_grad():  # close some heads for sure (and one whole layer): the pruning must remove them
        gated.heads.log_alpha[0] = -5.0
        gated.heads.log_alpha[1, :2] = -5.0
    torch.save(
        {**torch.load(ckpt, weights_only=False), "state_dict": gated.state_dict()}, tmp_path / "closed.ckpt"
    )

    pcfg = compose_config(["mode=prune", f"ckpt={tmp_path / 'closed.ckpt'}", f"out={tmp_path / 'pruned'}"])
    assert prune.run(pcfg) == 2.0  # 8 heads, 6 closed
    pruned, _, _ = load_pruned_model(tmp_path / "pruned")
    assert sum(p.numel() for p in pruned.encoder.parameters()) < sum(
        p.numel() for p in gated.encoder.parameters()
    )
    split = read_split(gated.tasks["pos"], train_cfg.tasks.pos.dev, tokenizer)
    batch = next(
        iter(
            eval_loader(
                task="pos",
                split=split,
                tasks=gated.tasks,
                tokenizer=tokenizer,
                max_tokens=2000,
                max_sentences=16,
            )
        )
    )
    with torch.no_grad():
        a, _ = gated.eval()("pos", batch["inputs"])
        b, _ = pruned("pos", batch["inputs"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    # mode=eval takes the pruned folder as its ckpt and scores the dev file like the gated checkpoint
    scores = {}
    for name, ckpt_path in (("gated", tmp_path / "closed.ckpt"), ("pruned", tmp_path / "pruned")):
        overrides = [
            f"ckpt={ckpt_path}",
            f"eval_files.pos={train_cfg.tasks.pos.dev}",
            f"out_dir={tmp_path / name}",
        ]
        evaluate.run(compose_config(["mode=eval", "logger=none", *overrides]))
        scores[name] = json.loads((tmp_path / name / "metrics.json").read_text())["test"]["pos"]
    assert scores["pruned"]["sentences"] == scores["gated"]["sentences"] == len(split.sentences)
    assert scores["pruned"]["acc"] == scores["gated"]["acc"]
