"""Importance through the gate hooks equals brute force: finite differences of a hand-scaled context."""

from __future__ import annotations

import pytest
import torch
from tiny_encoders import base_config, inputs, tiny_model
from torch import nn

from mtlheads.heads.gate import MaskGate, install_head_gate
from mtlheads.heads.importance import ImportanceGate, normalize_per_layer, score_importance

L, H, D = 2, 4, 32
EPS = 1e-6


def _model(family: str = "bert") -> nn.Module:
    return tiny_model(family, base_config(layers=L, heads=H, hidden=D), dtype=torch.float64)


def _batches() -> list[dict]:
    one = inputs()
    g = torch.Generator().manual_seed(5)
    two = {
        "input_ids": torch.randint(5, 99, (3, 5), generator=g),
        "attention_mask": torch.ones(3, 5, dtype=torch.long),
    }
    return [one, two]


def _weight(batch: dict) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(batch["input_ids"].sum()))
    w = torch.randn(*batch["input_ids"].shape, D, generator=g, dtype=torch.float64)
    return w * batch["attention_mask"].unsqueeze(-1)


def _loss(model, batch) -> torch.Tensor:
    return (model(**batch).last_hidden_state * _weight(batch)).sum() / batch["input_ids"].shape[0]


def _scaled_loss(model, batch, where: str, layer: int, index: tuple, factor: float) -> float:
    """The batch loss with ONE context slice (or FFN output slice) scaled by ``factor`` by a hand hook."""
    if where == "head":
        module = model.encoder.layer[layer].attention.output.dense
        b, t, h = index

        def pre(mod, args):
            x = args[0].clone()
            x[b, t, h * (D // H) : (h + 1) * (D // H)] *= factor
            return (x,)

        handle = module.register_forward_pre_hook(pre)
    else:
        module = model.encoder.layer[layer].output.dense
        b, t = index

        def post(mod, args, out):
            out = out.clone()
            out[b, t] *= factor
            return out

        handle = module.register_forward_hook(post)
    with torch.no_grad():
        value = float(_loss(model, batch))
    handle.remove()
    return value


def _fd(model, batch, where, layer, index) -> float:
    up = _scaled_loss(model, batch, where, layer, index, 1 + EPS)
    down = _scaled_loss(model, batch, where, layer, index, 1 - EPS)
    return (up - down) / (2 * EPS)


def test_ticket_importance_equals_per_example_per_token_finite_differences():
    model = _model()
    batches = _batches()
    got = score_importance(
        model, lambda b: (_loss(model, b), b["input_ids"].shape[0]), batches, kind="ticket"
    )
    heads, ffn = torch.zeros(L, H, dtype=torch.float64), torch.zeros(L, dtype=torch.float64)
    for batch in batches:
        n, T = batch["input_ids"].shape
        for layer in range(L):
            for b in range(n):
                for t in range(T):
                    ffn[layer] += abs(_fd(model, batch, "ffn", layer, (b, t)))
                    for h in range(H):
                        heads[layer, h] += abs(_fd(model, batch, "head", layer, (b, t, h)))
    torch.testing.assert_close(got.raw_heads.double(), heads, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(got.raw_ffn.double(), ffn, rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(got.heads.double(), normalize_per_layer(heads), rtol=1e-4, atol=1e-8)
    torch.testing.assert_close(got.heads.norm(dim=1).double(), torch.ones(L, dtype=torch.float64))
    assert got.examples == 5


def test_michel_importance_is_the_abs_of_each_batchs_signed_head_gradient():
    model = _model()
    batches = _batches()
    got = score_importance(model, lambda b: (_loss(model, b), 1), batches, kind="michel", ffn=False)
    heads = torch.zeros(L, H, dtype=torch.float64)
    for batch in batches:
        n, T = batch["input_ids"].shape
        for layer in range(L):
            for h in range(H):  # scaling head h everywhere = the sum of its per-token derivatives
                heads[layer, h] += abs(
                    sum(_fd(model, batch, "head", layer, (b, t, h)) for b in range(n) for t in range(T))
                )
    torch.testing.assert_close(got.raw_heads.double(), heads, rtol=1e-4, atol=1e-8)
    assert got.ffn is None
    # per token the abs comes first: the ticket score is at least Michel's
    ticket = score_importance(model, lambda b: (_loss(model, b), 1), batches, kind="ticket", ffn=False)
    assert bool((ticket.raw_heads >= got.raw_heads - 1e-9).all())


def test_cumulative_quirk_weighs_batch_s_of_t_by_t_minus_s_plus_one():
    model = _model()
    batches = _batches()
    loss_of = lambda b: (_loss(model, b), 1)  # noqa: E731
    per_batch = [score_importance(model, loss_of, [b], kind="ticket").raw_heads for b in batches]
    cumulative = score_importance(model, loss_of, batches, kind="ticket", cumulative=True).raw_heads
    torch.testing.assert_close(cumulative, 2 * per_batch[0] + per_batch[1])


def test_scoring_leaves_the_weights_trainable_and_composes_with_a_mask():
    model = _model()
    mask = torch.ones(L, H, dtype=torch.float64)
    mask[0, 1] = 0
    with install_head_gate(model, MaskGate(mask=mask)):
        got = score_importance(model, lambda b: (_loss(model, b), 1), _batches(), kind="ticket")
    assert got.raw_heads[0, 1] == 0 and bool((got.raw_heads[mask.bool()] > 0).all())  # a closed head scores 0
    assert all(p.requires_grad for p in model.parameters()) and all(
        p.grad is None for p in model.parameters()
    )


def test_ffn_gate_of_zero_skips_the_ffn_but_keeps_residual_and_layernorm():
    model = _model()
    batch = inputs()
    gate = ImportanceGate(num_layers=L, num_heads=H, ffn=True).double()
    with torch.no_grad():
        gate.ffn_values[1] = 0.0
    layer = model.encoder.layer[1]  # the last layer: its output is the model's
    seen = {}
    hook = layer.attention.register_forward_hook(lambda m, a, out: seen.update(attn=out[0]))
    with install_head_gate(model, gate), torch.no_grad():
        gated = model(**batch).last_hidden_state
    hook.remove()
    with torch.no_grad():  # LayerNorm(attention output): no FFN term, the residual and LayerNorm kept
        by_hand = layer.output.LayerNorm(seen["attn"])
    torch.testing.assert_close(gated, by_hand, atol=1e-10, rtol=0)
    with torch.no_grad():
        assert not torch.allclose(model(**batch).last_hidden_state, gated)  # the FFN did matter


@pytest.mark.parametrize("family", ["bert", "distilbert", "albert", "deberta-v2"])
def test_ffn_gate_grad_is_finite_difference_for_every_family(family):
    model = tiny_model(family, base_config(layers=L, heads=H, hidden=D), dtype=torch.float64)
    gate = ImportanceGate(num_layers=L, num_heads=H, ffn=True).double()
    batch = inputs()
    w = _weight(batch)
    loss = lambda: (model(**batch).last_hidden_state * w).sum()  # noqa: E731
    with install_head_gate(model, gate):
        loss().backward()
        fd = torch.zeros(L, dtype=torch.float64)
        with torch.no_grad():
            for layer in range(L):
                gate.ffn_values[layer] += EPS
                up = loss()
                gate.ffn_values[layer] -= 2 * EPS
                down = loss()
                gate.ffn_values[layer] += EPS
                fd[layer] = (up - down) / (2 * EPS)
    assert gate.ffn_values.grad.abs().sum() > 0
    torch.testing.assert_close(gate.ffn_values.grad, fd, rtol=1e-4, atol=1e-9)
