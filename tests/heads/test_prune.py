"""Physical head pruning on tiny random BERT-like and DeBERTa-v2 encoders."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from tiny_encoders import base_config, inputs, run, tiny_model
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from mtlheads.heads.gate import MaskGate, install_head_gate
from mtlheads.heads.prune import (
    CONFIG_KEY,
    encoder_flops,
    kept_heads,
    layer_flops,
    load_pruned,
    prune_heads,
    save_pruned,
)

L, H, D = 3, 4, 32
BASE = base_config(layers=L, heads=H, hidden=D)
DEBERTA = {**BASE, "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "max_relative_positions": 16}
CONFIGS = {
    "bert": ("bert", BASE),
    "roberta": ("roberta", BASE),
    "electra": ("electra", {**BASE, "embedding_size": 16}),
    "deberta-v2": ("deberta-v2", {**DEBERTA, "share_att_key": False}),
    "deberta-v2-shared": ("deberta-v2", {**DEBERTA, "share_att_key": True, "position_buckets": 8}),
}
# Zeros, fractional values (a hard-concrete eval gate), a layer with every head closed.
GATES = torch.tensor([[0.0, 0.7, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.3, 0.0, 1.2]])


def tiny(name: str, impl: str = "eager", head: bool = False) -> nn.Module:
    model_type, config = CONFIGS[name]
    return tiny_model(model_type, config, impl=impl, token_head=head)


def gated(model: nn.Module, gates: torch.Tensor) -> torch.Tensor:
    with install_head_gate(model, MaskGate(mask=gates)):
        return run(model)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def removed_params(name: str, gates: torch.Tensor) -> int:
    """Per removed head: d_h rows (+ bias) of each per-head projection and d_h columns of the output one."""
    d_h, per_head = D // H, 3 + (2 if name == "deberta-v2" else 0)  # q, k, v (+ pos_key, pos_query)
    return int((gates == 0).sum()) * (per_head * (d_h * D + d_h) + D * d_h)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pruned_model_equals_gated_model(name, impl):
    model = tiny(name, impl)
    ref, before = gated(model, GATES), n_params(model)
    assert prune_heads(model, GATES) is model
    torch.testing.assert_close(run(model), ref, atol=1e-5, rtol=0)
    assert before - n_params(model) == removed_params(name, GATES)
    assert kept_heads(model) == [[1, 2], [], [0, 1, 3]] == getattr(model.config, CONFIG_KEY)
    attn = model.encoder.layer[0].attention.self
    assert attn.num_attention_heads == 2 and attn.all_head_size == 2 * D // H
    assert model.encoder.layer[1].attention.output.dense.weight.shape == (D, 0)


@pytest.mark.parametrize("name", ["bert", "deberta-v2"])
def test_pruning_nothing_changes_nothing(name):
    model = tiny(name)
    ref, before = run(model), n_params(model)
    prune_heads(model, torch.ones(L, H))
    torch.testing.assert_close(run(model), ref, atol=0, rtol=0)
    assert n_params(model) == before and kept_heads(model) == [list(range(H))] * L


@pytest.mark.parametrize("name", ["bert", "deberta-v2"])
def test_pruning_twice_composes(name):
    model = tiny(name)
    second = torch.tensor([[1.0, 0.5, 0.0, 7.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 2.0, 0.0]])
    ref = gated(model, GATES * second)  # the second gate's values on removed heads do not matter
    prune_heads(prune_heads(model, GATES), second)
    torch.testing.assert_close(run(model), ref, atol=1e-5, rtol=0)
    assert kept_heads(model) == [[1], [], [0, 1]]


@pytest.mark.parametrize("name", ["bert", "deberta-v2"])
def test_save_load_round_trip(name, tmp_path, minilm_dir):
    model = prune_heads(tiny(name, head=True), GATES)
    ref = run(model)
    save_pruned(model, AutoTokenizer.from_pretrained(minilm_dir), tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())[CONFIG_KEY] == kept_heads(model)
    loaded, tokenizer = load_pruned(tmp_path, attn_implementation="eager")
    assert type(loaded) is type(model) and tokenizer is not None and not loaded.training
    assert kept_heads(loaded) == kept_heads(model) and n_params(loaded) == n_params(model)
    torch.testing.assert_close(run(loaded), ref, atol=0, rtol=0)
    default, _ = load_pruned(tmp_path)  # SDPA where the model has it (BERT), else eager (DeBERTa-v2)
    torch.testing.assert_close(run(default), ref, atol=1e-5, rtol=0)
    tiny(name).save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="not written by save_pruned"):
        load_pruned(tmp_path / "plain")


def test_dead_layer_keeps_attention_outputs_and_trains():
    model = prune_heads(tiny("bert", "eager"), GATES)
    atts = model(**inputs(), output_attentions=True).attentions
    assert [tuple(a.shape) for a in atts] == [(2, 2, 7, 7), (2, 0, 7, 7), (2, 3, 7, 7)]
    dead = model.encoder.layer[1].attention
    assert type(dead.self).__name__ == "HeadlessBertSelfAttention" and not list(dead.self.parameters())
    torch.testing.assert_close(run(copy.deepcopy(model)), run(model), atol=0, rtol=0)
    model.train()
    run(model).pow(2).sum().backward()
    assert dead.output.dense.bias.grad.abs().sum() > 0


def test_errors():
    model = tiny("bert")
    with pytest.raises(ValueError, match="gates shape"):
        prune_heads(model, torch.ones(L, H + 1))
    with (
        install_head_gate(model, MaskGate(mask=torch.ones(L, H))),
        pytest.raises(ValueError, match="head gate"),
    ):
        prune_heads(model, GATES)
    distil = AutoModel.from_config(
        AutoConfig.for_model("distilbert", dim=D, n_layers=L, n_heads=H, hidden_dim=37)
    )
    with pytest.raises(ValueError, match="'distilbert'"):
        prune_heads(distil, torch.ones(L, H))


def test_flops():
    cfg = AutoConfig.for_model("bert", **BASE)
    f, t, d_h = layer_flops(cfg, heads=2, seq_len=10), 10, D // H
    assert f == {
        "qkv": 2 * 3 * t * D * 2 * d_h,
        "scores": 2 * t * t * 2 * d_h,
        "context": 2 * t * t * 2 * d_h,
        "out": 2 * t * 2 * d_h * D,
        "ffn": 2 * 2 * t * D * 37,
    }
    model = prune_heads(tiny("bert"), GATES)
    per_layer = [sum(layer_flops(cfg, k, t).values()) for k in (2, 0, 3)]
    assert encoder_flops(model, t) == sum(per_layer) < encoder_flops(cfg, t)
