"""The head gate on tiny random encoders of every supported family."""

from __future__ import annotations

import pytest
import torch
from tiny_encoders import V, base_config, inputs, run, tiny_model
from torch import nn
from transformers import AutoConfig, AutoModel, BertConfig

from mtlheads.heads.gate import (
    HeadGate,
    MaskGate,
    OnesGate,
    find_projections,
    head_shape,
    install_head_gate,
)
from mtlheads.heads.importance import ImportanceGate

L, H, D = 2, 4, 32
BASE = base_config(layers=L, heads=H, hidden=D)
CONFIGS = {
    "bert": BASE,
    "roberta": BASE,
    "electra": {**BASE, "embedding_size": D},
    "xlm-roberta": BASE,
    "albert": {**BASE, "embedding_size": 16},
    "deberta-v2": {
        **BASE,
        "relative_attention": True,
        "pos_att_type": ["p2c", "c2p"],
        "max_relative_positions": 16,
    },
    "distilbert": dict(dim=D, n_layers=L, n_heads=H, hidden_dim=37, vocab_size=V),
    "modernbert": {
        **BASE,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "cls_token_id": 1,
        "sep_token_id": 2,
        "global_attn_every_n_layers": 1,
    },
}
FAMILIES = sorted(CONFIGS)


def tiny(model_type: str, impl: str = "eager", dtype: torch.dtype = torch.float32) -> nn.Module:
    return tiny_model(model_type, CONFIGS[model_type], impl=impl, dtype=dtype)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("family", FAMILIES)
def test_unit_gates_reproduce_ungated_model(family, impl):
    model = tiny(family, impl)
    ref = run(model)
    for gate in (
        OnesGate(num_layers=L, num_heads=H),
        MaskGate(mask=torch.ones(L, H)),
        ImportanceGate(num_layers=L, num_heads=H, keep_context=True),
    ):
        with install_head_gate(model, gate):
            torch.testing.assert_close(run(model), ref, atol=1e-5, rtol=0)
    assert not model._forward_pre_hooks
    assert all(not p._forward_pre_hooks for _, p in find_projections(model))


@pytest.mark.parametrize("family", FAMILIES)
def test_mask_gate_equals_zeroed_projection_columns(family):
    model = tiny(family)
    layer, head, d_h = L - 1, 2, D // H
    mask = torch.ones(L, H)
    shared = family == "albert"  # one module at every depth: zeroing its columns closes all depths
    if shared:
        mask[:, head] = 0
    else:
        mask[layer, head] = 0
    handle = install_head_gate(model, MaskGate(mask=mask))
    gated = run(model)
    handle.remove()
    assert not torch.allclose(gated, run(model), atol=1e-4)
    proj = find_projections(model)[0 if shared else layer][1]
    with torch.no_grad():
        proj.weight[:, head * d_h : (head + 1) * d_h] = 0
    torch.testing.assert_close(gated, run(model), atol=1e-5, rtol=0)


# Where each family keeps head h's value projection: (module name of layer l's value Linear, row offset).
# Written from the transformers model code, independently of the gate's own (output-projection) convention.
VALUE_ROWS = {
    "bert": (lambda l: f"encoder.layer.{l}.attention.self.value", 0),
    "roberta": (lambda l: f"encoder.layer.{l}.attention.self.value", 0),
    "electra": (lambda l: f"encoder.layer.{l}.attention.self.value", 0),
    "xlm-roberta": (lambda l: f"encoder.layer.{l}.attention.self.value", 0),
    "deberta-v2": (lambda l: f"encoder.layer.{l}.attention.self.value_proj", 0),
    "albert": (lambda l: "encoder.albert_layer_groups.0.albert_layers.0.attention.value", 0),  # shared
    "distilbert": (lambda l: f"transformer.layer.{l}.attention.v_lin", 0),
    "modernbert": (lambda l: f"layers.{l}.attn.Wqkv", 2 * D),  # fused Q, K, V rows: (3, H, d_h) in order
}


@pytest.mark.parametrize("family", FAMILIES)
def test_gating_head_h_equals_zeroing_its_value_rows(family):
    """Head h's context is softmax(QK^T) V_h: zeroing the rows of W_V (and b_V) that make V_h zeroes it
    exactly, whatever the attention weights. Gating head h to 0 must give the same output, so the slice the
    gate scales is head h of the attention and not another head's (an independent check of the slice
    convention, in particular for ALBERT's shared module, DistilBERT's v_lin and ModernBERT's fused Wqkv)."""
    model = tiny(family)
    layer, head, d_h = L - 1, 1, D // H
    shared = family == "albert"
    mask = torch.ones(L, H)
    mask[:, head] = 0 if shared else 1
    mask[layer, head] = 0
    with install_head_gate(model, MaskGate(mask=mask)):
        gated = run(model)
    name, offset = VALUE_ROWS[family]
    value = dict(model.named_modules())[name(layer)]
    rows = slice(offset + head * d_h, offset + (head + 1) * d_h)
    with torch.no_grad():
        value.weight[rows] = 0
        if value.bias is not None:
            value.bias[rows] = 0
    by_hand = run(model)
    torch.testing.assert_close(gated, by_hand, atol=1e-5, rtol=0)
    other = torch.ones(L, H)  # and it is head h, not any change: gating head h + 1 instead differs
    other[:, head + 1] = 0
    model = tiny(family)
    with install_head_gate(model, MaskGate(mask=other)):
        assert not torch.allclose(run(model), by_hand, atol=1e-4)


@pytest.mark.parametrize("family", ["bert", "albert", "distilbert", "deberta-v2"])
def test_importance_gate_grad_is_finite_difference(family):
    model = tiny(family, dtype=torch.float64)
    gate = ImportanceGate(num_layers=L, num_heads=H).double()
    weight = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with install_head_gate(model, gate):
        (run(model) * weight).sum().backward()
        eps, fd = 1e-6, torch.zeros(L, H, dtype=torch.float64)
        with torch.no_grad():
            for l in range(L):
                for h in range(H):
                    gate.values[l, h] += eps
                    up = (run(model) * weight).sum()
                    gate.values[l, h] -= 2 * eps
                    down = (run(model) * weight).sum()
                    gate.values[l, h] += eps
                    fd[l, h] = (up - down) / (2 * eps)
    assert gate.values.is_leaf and gate.values.grad.abs().sum() > 0
    torch.testing.assert_close(gate.values.grad, fd, rtol=1e-4, atol=1e-9)


def test_importance_gate_per_example_grad():
    model = tiny("bert", dtype=torch.float64)
    gate = ImportanceGate(num_layers=L, num_heads=H, keep_context=True).double()
    batch = inputs()
    weight = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weight = weight * batch["attention_mask"].unsqueeze(-1)  # per-example loss on real tokens only
    with install_head_gate(model, gate):
        (model(**batch).last_hidden_state * weight).sum().backward()
        per_ex = gate.per_example_grad()  # (L, B, H)
        assert per_ex.shape == (L, 2, H) and gate.contexts[0].shape == (2, 7, H, D // H)
        torch.testing.assert_close(per_ex.sum(1), gate.values.grad)
        for b in range(2):  # each example alone gives its own column
            gate.values.grad = None
            one = {k: v[b : b + 1] for k, v in batch.items()}
            (model(**one).last_hidden_state * weight[b : b + 1]).sum().backward()
            torch.testing.assert_close(per_ex[:, b], gate.values.grad, rtol=1e-6, atol=1e-10)
    gate.clear()
    assert gate.values.grad is None and gate.contexts[0] is None


def test_albert_gets_per_depth_gates():
    model = tiny("albert")
    outs = []
    for depth in range(L):
        mask = torch.ones(L, H)
        mask[depth, 1] = 0
        with install_head_gate(model, MaskGate(mask=mask)):
            outs.append(run(model))
            outs.append(run(model))  # the depth counter resets every forward
    torch.testing.assert_close(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2], atol=1e-4)
    # depth 0 by hand: an independent hook that zeroes head 1 on the first call of the shared module only
    proj, d_h, calls = find_projections(model)[0][1], D // H, []

    def by_hand(module, args):
        calls.append(1)
        if len(calls) == 1:
            x = args[0].clone()
            x[..., d_h : 2 * d_h] = 0
            return (x,)

    hook = proj.register_forward_pre_hook(by_hand)
    torch.testing.assert_close(run(model), outs[0], atol=1e-6, rtol=0)
    hook.remove()
    assert len(calls) == L


class CountingGate(HeadGate):
    """A stand-in for a stochastic gate: counts how often it is sampled."""

    def __init__(self):
        super().__init__(num_layers=L, num_heads=H)
        self.calls = 0

    def forward(self):
        self.calls += 1
        return torch.rand(L, H)


@pytest.mark.parametrize("family", ["bert", "albert"])
def test_gate_is_sampled_once_per_forward(family):
    model, gate = tiny(family), CountingGate()
    with install_head_gate(model, gate):
        run(model)
        run(model)
    assert gate.calls == 2


def test_shapes_and_errors():
    model = tiny("albert")
    assert head_shape(model) == (L, H) and head_shape(model.config) == (L, H)
    two_inner = AutoConfig.for_model("albert", **{**CONFIGS["albert"], "inner_group_num": 2})
    assert head_shape(two_inner) == (2 * L, H)
    torch.manual_seed(0)
    deep = AutoModel.from_config(two_inner).eval()
    ref, mask = run(deep), torch.ones(2 * L, H)
    mask[3, 0] = 0  # the last of the 4 attention calls
    with install_head_gate(deep, ImportanceGate(num_layers=2 * L, num_heads=H)):
        torch.testing.assert_close(run(deep), ref, atol=1e-5, rtol=0)
    with install_head_gate(deep, MaskGate(mask=mask)):
        assert not torch.allclose(run(deep), ref, atol=1e-4)
    with pytest.raises(ValueError, match="gate shape"):
        install_head_gate(model, OnesGate(num_layers=L + 1, num_heads=H))

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = BertConfig(**BASE)
            self.proj = nn.Linear(D, D)

    with pytest.raises(ValueError, match="Odd"):
        install_head_gate(Odd(), OnesGate(num_layers=L, num_heads=H))


def test_mask_gate_follows_model_dtype():
    model = tiny("bert", dtype=torch.float64)
    mask = torch.ones(L, H)
    mask[0, 0] = 0
    with install_head_gate(model, MaskGate(mask=mask)):
        assert run(model).dtype == torch.float64


def test_activation_checkpointing_reuses_the_forward_sample():
    torch.manual_seed(0)
    cfg = BertConfig(**BASE, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = AutoModel.from_config(cfg).train()

    class Noisy(HeadGate):
        def __init__(self):
            super().__init__(num_layers=L, num_heads=H)
            self.logit = nn.Parameter(torch.zeros(L, H))

        def forward(self):
            return torch.sigmoid(self.logit + torch.randn(L, H))

    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable()
        gate = Noisy()
        torch.manual_seed(1)
        with install_head_gate(model, gate):
            run(model).pow(2).sum().backward()
        grads.append(gate.logit.grad)
    torch.testing.assert_close(grads[0], grads[1])
