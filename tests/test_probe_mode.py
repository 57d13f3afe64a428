"""mode=probe end to end: static means the pretrained encoder afresh; Figure 4 after a probe sweep."""

from __future__ import annotations

import torch
from conftest import compose_config, run_cli

from mtlheads.data import read_conllu
from mtlheads.encoder.load import load_encoder
from mtlheads.heads.probe import probe_heads
from mtlheads.heads.probe_results import ProbeResult
from mtlheads.modes import probe, train


def _train_pos(tmp_path, tiny_bert_dir):
    out = tmp_path / "stl"
    cfg = compose_config(
        ["mode=stl", "taskset=pos", f"encoder.name={tiny_bert_dir}", "trainer=smoke", "logger=none"]
        + ["optim.encoder_lr=1e-2", f"out_dir={out}"]  # a large lr: the fine-tuned heads must differ
    )
    train.run(cfg)
    return out


def test_a_static_probe_is_the_fresh_pretrained_encoders_not_the_fine_tuned_ones(tmp_path, tiny_bert_dir):
    run = _train_pos(tmp_path, tiny_bert_dir)
    results = {}
    for name, ckpt in (("static", "static"), ("tuned", str(run))):
        cfg = compose_config(
            ["mode=probe", "taskset=[pos,dep]", f"ckpt={ckpt}", f"encoder.name={tiny_bert_dir}"]
            + ["logger=none", f"out_dir={tmp_path / name}"]
        )
        probe.run(cfg)
        results[name] = {t: ProbeResult.load(tmp_path / name / f"probe_{t}") for t in ("pos", "dep")}
    model, tokenizer = load_encoder(tiny_bert_dir)
    test = read_conllu(compose_config(["taskset=pos"]).tasks.pos.test)
    for task in ("pos", "dep"):
        fresh = probe_heads(model, tokenizer, test, task, max_tokens=4096)
        assert torch.equal(results["static"][task].correct, fresh.correct)  # the pretrained weights, exactly
        assert not torch.equal(results["tuned"][task].correct, fresh.correct)  # the checkpoint's weights
        assert results["tuned"][task].meta["mode"] == "stl"


def test_the_figure_4_preset_probes_every_model_and_draws_the_delta_plot(tmp_path, tiny_bert_dir):
    run = _train_pos(tmp_path, tiny_bert_dir)
    sweep = tmp_path / "fig4"
    args = ["experiment=stem_cell/fig4_pos", f"ckpt=static,{run}", f"encoder.name={tiny_bert_dir}"]
    proc = run_cli(["-m", *args, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = sweep / "figures"
    for name in ("probe_pos_delta.png", "probe_pos_delta.pdf", "probe_pos_delta.json", "probe_pos_table.md"):
        assert (figures / name).is_file(), name
    table = (figures / "probe_pos_table.md").read_text()
    assert "static" in table and "STL" in table
