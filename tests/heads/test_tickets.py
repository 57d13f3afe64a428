"""Ticket masks (nested, protected, counted), random and losing tickets, folding a mask into the weights."""

from __future__ import annotations

import torch
from tiny_encoders import base_config, inputs, tiny_model

from mtlheads.heads.gate import MaskGate, install_head_gate
from mtlheads.heads.masks import Mask
from mtlheads.heads.prune import fold_mask
from mtlheads.heads.tickets import (
    ffn_count,
    losing_masks,
    parameter_usage,
    random_masks,
    structure_sizes,
    winning_masks,
)

LEVELS = (0.1, 0.2, 0.3, 0.5, 0.8, 0.95)


def _scores(seed: int = 0, layers: int = 6, heads: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(layers, heads, generator=g), torch.rand(layers, generator=g)


def test_winning_masks_are_nested_protected_and_hit_the_counts():
    heads, ffn = _scores()
    masks = winning_masks(heads, ffn, LEVELS)
    previous = None
    for level, m in masks.items():
        pruned = int((m.heads == 0).sum())
        assert pruned == min(int(72 * level), 72 - 6), level  # 0.95 is capped: one head per layer stays
        assert bool((m.heads.sum(dim=1) >= 1).all())
        assert bool(m.heads[torch.arange(6), heads.argmax(dim=1)].all())  # each layer's best head kept
        assert int((m.ffn == 0).sum()) == ffn_count(level, 6)
        if previous is not None:  # nested: whatever a level keeps, the previous level kept too
            assert bool((m.heads <= previous.heads).all()) and bool((m.ffn <= previous.ffn).all())
        previous = m
    # the pruned heads are the lowest-scoring unprotected ones (brute force: sort by hand)
    m = masks[0.3]
    unprotected = sorted(
        (float(heads[l, h]), l, h) for l in range(6) for h in range(12) if h != int(heads[l].argmax())
    )
    assert {(l, h) for _, l, h in unprotected[:21]} == {tuple(x) for x in (m.heads == 0).nonzero().tolist()}
    assert [ffn_count(p, 12) for p in (0.1, 0.2, 0.3, 0.8)] == [1, 2, 3, 8]  # the paper's 10p of 12


def test_losing_masks_prune_the_most_important_first_and_keep_each_layers_weakest_head():
    heads, ffn = _scores(1)
    m = losing_masks(heads, ffn, (0.2,))[0.2]
    assert bool(m.heads[torch.arange(6), heads.argmin(dim=1)].all())
    unprotected = sorted(
        ((-float(heads[l, h]), l, h) for l in range(6) for h in range(12) if h != int(heads[l].argmin())),
    )
    assert {(l, h) for _, l, h in unprotected[:14]} == {tuple(x) for x in (m.heads == 0).nonzero().tolist()}
    assert float(ffn[m.ffn == 0].min()) >= float(ffn[m.ffn == 1].max())


def test_random_masks_keep_per_layer_counts_without_replacement():
    heads, ffn = _scores(2)
    winning = winning_masks(heads, ffn, LEVELS)
    rand = random_masks(winning, seed=3)
    for level in LEVELS:
        assert torch.equal(rand[level].heads.sum(dim=1), winning[level].heads.sum(dim=1))
        assert set(rand[level].heads.unique().tolist()) <= {0.0, 1.0}  # no duplicates: exact counts
        assert rand[level].ffn.sum() == winning[level].ffn.sum()
    assert not torch.equal(rand[0.5].heads, winning[0.5].heads)
    assert torch.equal(random_masks(winning, seed=3)[0.5].heads, rand[0.5].heads)  # seeded


def test_parameter_usage_counts_heads_and_ffns_by_hand():
    model = tiny_model("bert", base_config(layers=2, heads=4, hidden=32))
    per_head, per_ffn = structure_sizes(model.config)
    assert per_head == 3 * (32 * 8 + 8) + 8 * 32 and per_ffn == 32 * 37 + 37 + 37 * 32 + 32
    total = sum(p.numel() for p in model.parameters())
    a = Mask(torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 1]]), torch.tensor([1.0, 0]))
    b = Mask(torch.tensor([[0.0, 1, 1, 0], [1, 1, 1, 1]]), torch.tensor([1.0, 1]))
    usage = parameter_usage({"a": a, "b": b}, head_params=per_head, ffn_params=per_ffn, total=total)
    assert usage["a"] == (total - 2 * per_head - per_ffn) / total
    assert usage["b"] == (total - 2 * per_head) / total
    assert usage["union"] == (total - 1 * per_head) / total
    # the hand count of one head is what removing it really removes from the model
    fold_mask(model, torch.tensor([[0.0, 1, 1, 1], [1, 1, 1, 1]]), torch.tensor([1.0, 0]))
    assert total - sum(p.numel() for p in model.parameters()) == per_head + per_ffn


def test_a_folded_mask_computes_what_the_hooked_mask_computes_with_fewer_weights():
    hooked = tiny_model("bert", base_config(layers=2, heads=4, hidden=32))
    folded = tiny_model("bert", base_config(layers=2, heads=4, hidden=32))
    heads, ffn = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]]), torch.tensor([0.0, 1])
    with install_head_gate(hooked, MaskGate(mask=heads, ffn=ffn)), torch.no_grad():
        expected = hooked(**inputs()).last_hidden_state
    assert fold_mask(folded, heads, ffn)
    with torch.no_grad():
        torch.testing.assert_close(folded(**inputs()).last_hidden_state, expected, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in hooked.parameters())
    assert not fold_mask(tiny_model("distilbert", base_config(layers=2)), heads, ffn)  # unsupported: hooks
