"""The fit step on a tiny random encoder and the shipped excerpt: what it returns, writes and selects."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from conftest import compose_config

from mtlheads.build import build_encoder, build_model, build_tasks, read_task_data
from mtlheads.checkpoint import read_checkpoint
from mtlheads.fit import evaluate, fit
from mtlheads.training.data import eval_loaders


def _setup(tiny_bert_dir, out, *extra):
    cfg = compose_config(
        [
            "taskset=pos",
            f"encoder.name={tiny_bert_dir}",
            "trainer=smoke",
            "logger=none",
            f"out_dir={out}",
            *extra,
        ]
    )
    pl.seed_everything(cfg.seed, workers=True)
    tasks = build_tasks(cfg)
    encoder, tokenizer = build_encoder(cfg.encoder)
    data = read_task_data(cfg, tasks, tokenizer)
    return cfg, build_model(cfg, tasks, encoder), data, tokenizer


class _SpoilLastEpoch(pl.Callback):
    """Zeroes the POS decoder before the last epoch's dev evaluation: the last epoch is then the worst."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.state.fn == "fit" and trainer.current_epoch == self.epoch:
            with torch.no_grad():
                for p in pl_module.decoders.parameters():
                    p.zero_()


def test_fit_selects_the_best_epoch_tests_its_weights_and_writes_only_checkpoints(
    tmp_path, tiny_bert_dir, capsys
):
    out = tmp_path / "run"
    cfg, model, data, tokenizer = _setup(tiny_bert_dir, out, "trainer.max_epochs=3", "optim.decoder_lr=1e-2")
    capsys.readouterr()
    result = fit(
        cfg, model=model, data=data, tokenizer=tokenizer, out_dir=out, callbacks=[_SpoilLastEpoch(2)]
    )

    assert capsys.readouterr().out == ""  # the recipe prints, not the fit step
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["checkpoints/best.ckpt", "checkpoints/last.ckpt"]
    scores = [h["score"] for h in result.history]
    assert len(scores) == 3 and scores[2] < max(scores[:2])  # the spoiled epoch is the worst
    assert result.best_epoch == scores.index(max(scores)) != 2
    assert result.results["dev"]["score"] == max(scores)  # POS: no test-time decoding to differ

    best = read_checkpoint(result.best_checkpoint)
    assert best["epoch"] == result.best_epoch
    assert "optimizer_states" not in best and "mtlheads_config" in best  # weights only, but rebuildable
    # The test scores are the best checkpoint's, not the spoiled last weights'.
    spoiled = next(p for p in model.decoders.parameters())
    assert spoiled.abs().sum() > 0  # fit leaves the model holding the best weights
    test = eval_loaders({"pos": data["pos"]["test"]}, tasks=model.tasks, tokenizer=tokenizer, batch=cfg.batch)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert evaluate(trainer, model, test, split="test")["pos"] == result.results["test"]["pos"]


def test_fit_runs_in_a_loop_with_fresh_models_and_the_same_seed_gives_the_same_result(
    tmp_path, tiny_bert_dir
):
    results = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        cfg, model, data, tokenizer = _setup(tiny_bert_dir, out)
        results.append(fit(cfg, model=model, data=data, tokenizer=tokenizer, out_dir=out).results)
    assert results[0] == results[1]
    assert (tmp_path / "run0" / "checkpoints" / "best.ckpt").is_file()
