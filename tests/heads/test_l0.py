"""The gate-pruning objective: λ defaults, the fixed penalty, and the target-heads Lagrangian."""

from __future__ import annotations

import pytest
import torch

from mtlheads.heads.l0 import L0Gate, default_lambda, target_count
from mtlheads.model import OptimConfig


def test_paper_lambdas_and_target_parsing():
    assert [default_lambda([t]) for t in ("pos", "dep", "con", "srl", "ner")] == [
        0.01,
        0.01,
        0.01,
        0.001,
        0.0002,
    ]
    assert default_lambda(["pos", "ner", "dep", "con", "srl"]) == 0.001
    assert target_count(0.3, 144) == pytest.approx(43.2) and target_count(40, 144) == 40
    with pytest.raises(ValueError, match="target_heads"):
        target_count(200, 144)


def test_fixed_penalty_is_lambda_times_mean_layer_expected_open_heads():
    gate = L0Gate(num_layers=3, num_heads=4, lam=0.01, generator=torch.Generator().manual_seed(0))
    expected = 0.01 * gate.prob_open().sum(1).mean()
    torch.testing.assert_close(gate.regularizer(), expected)


def test_target_heads_lagrangian_drives_expected_open_heads_to_the_target():
    """Only the objective, plain Adam as in training: the multipliers rise until the constraint holds."""
    torch.manual_seed(0)
    gate = L0Gate(
        num_layers=6, num_heads=12, lam=0.0, target_heads=0.25, generator=torch.Generator().manual_seed(0)
    )
    assert gate.target == pytest.approx(18.0)
    opt = torch.optim.AdamW(gate.param_groups(OptimConfig(gate_lr=0.05, multiplier_lr=0.05)))
    start = float(gate.expected_open().detach())
    for _ in range(600):
        opt.zero_grad()
        gate.regularizer().backward()
        opt.step()
    end = float(gate.expected_open().detach())
    assert start > 40 and abs(end - 18.0) < 3.0, (start, end)
    assert float(gate.multipliers.detach()[0]) > 0  # ascent: λ₁ grew while too many heads were open
