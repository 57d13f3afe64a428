"""The hard-concrete (L0) gate: its samples, its penalty, its eval gate, and its place in an encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from mtlheads.heads.gate import MaskGate, install_head_gate
from mtlheads.heads.hard_concrete import HardConcreteGate, hard_concrete_cdf

# The paper's constants, typed here rather than read from the module: temperature β = 0.33 and stretch
# (-0.1, 1.1), the defaults of the Stem Cell code's ConcreteGate (Voita et al. 2019's hard concrete of
# Louizos et al. 2018, whose experiments use β = 2/3).
BETA, LOW, HIGH = 0.33, -0.1, 1.1
CLOSED_BELOW = -2.3979  # log(-l/r) = log(0.1/1.1) = -ln 11, by hand: at or below it the eval gate is 0


def paper_cdf(z: float, log_alpha: float) -> float:
    """P(sample <= z), 0 <= z < 1, of Louizos et al.'s stretched and clamped concrete, written out again:
    ``z = clamp(σ((logit u + log α)/β)(r - l) + l, 0, 1)`` with ``u ~ U(0, 1)``, so ``z <= t`` iff
    ``logit u <= β logit((t - l)/(r - l)) - log α``, and ``logit u`` is standard logistic."""
    q = (z - LOW) / (HIGH - LOW)
    return 1.0 / (1.0 + math.exp(log_alpha - BETA * math.log(q / (1.0 - q))))


def _grid_gate(log_alpha: float, n: int = 40_000) -> HardConcreteGate:
    """n i.i.d. gates with the same log α (one forward = n draws)."""
    gate = HardConcreteGate(num_layers=n // 200, num_heads=200, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        gate.log_alpha.fill_(log_alpha)
    return gate.train()


@pytest.mark.parametrize("log_alpha", [-3.0, -0.5, 0.0, 1.2, 3.0])
def test_samples_follow_the_analytic_hard_concrete_cdf(log_alpha):
    """Kolmogorov-Smirnov distance over [0, 1), atoms at 0 and 1 included, against the analytic CDF."""
    gate = _grid_gate(log_alpha)
    z = gate().detach().double().flatten().numpy()
    n = z.size
    grid = np.concatenate([[0.0], np.linspace(1e-4, 1 - 1e-4, 400)])
    empirical = np.array([(z <= g).mean() for g in grid])
    analytic = np.array([paper_cdf(g, log_alpha) for g in grid])  # β = 0.33: not the module's constant
    ks = np.abs(empirical - analytic).max()
    assert ks < 1.63 / math.sqrt(n)  # the 1% critical value of the KS statistic
    # The atom at 1: every sample above (1 - l)/(r - l) in s is clamped to exactly 1.
    assert (z == 1.0).mean() == pytest.approx(1 - paper_cdf(1 - 1e-12, log_alpha), abs=4 / math.sqrt(n))
    # the module's own analytic CDF (used by the penalty test below) is the paper's
    assert [hard_concrete_cdf(g, log_alpha) for g in grid] == pytest.approx(analytic.tolist(), abs=1e-12)


def test_constants_against_values_computed_by_hand():
    """Numbers worked out on paper from β = 0.33, l = -0.1, r = 1.1, against the gate's behaviour."""
    gate = HardConcreteGate(num_layers=1, num_heads=4)
    with torch.no_grad():
        gate.log_alpha.copy_(torch.tensor([[0.0, -2.397, -2.399, 2.399]]))
    # P(open) = σ(log α - β log(-l/r)) = σ(0.33 ln 11) = σ(0.79130) = 0.68810 at log α = 0
    assert float(gate.prob_open()[0, 0]) == pytest.approx(0.68810, abs=5e-5)
    # eval gate σ(log α)·1.2 - 0.1: 0.5 at 0; just above -2.3979 open but tiny; below it 0; above 2.3979 1
    z = gate.eval()().detach()[0]
    assert float(z[0]) == pytest.approx(0.5) and 0 < float(z[1]) < 1e-3 and z[2] == 0 and z[3] == 1
    # the sample's spread is β's: P(z <= 0.9 | log α = 0) = σ(0.33 logit(1/1.2)) = σ(0.33 ln 5) = 0.62973
    assert paper_cdf(0.9, 0.0) == pytest.approx(0.62973, abs=5e-5)
    assert (_grid_gate(0.0)().detach() <= 0.9).double().mean() == pytest.approx(0.62973, abs=0.01)


@pytest.mark.parametrize("log_alpha", [-4.0, -2.0, 0.0, 2.0])
def test_penalty_is_the_probability_of_a_nonzero_gate(log_alpha):
    gate = _grid_gate(log_alpha)
    nonzero = float((gate() > 0).double().mean())
    p = float(gate.prob_open().detach()[0, 0])
    assert p == pytest.approx(1 - paper_cdf(0.0, log_alpha), abs=1e-6)  # analytic, the paper's β
    assert nonzero == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / gate.log_alpha.numel()) + 1e-4)
    # the penalty: Σ over heads, mean over layers
    assert float(gate.penalty().detach()) == pytest.approx(p * gate.num_heads, rel=1e-5)
    assert float(gate.expected_open().detach()) == pytest.approx(p * gate.log_alpha.numel(), rel=1e-4)


def test_eval_gate_is_exactly_zero_below_the_threshold_and_one_above():
    gate = HardConcreteGate(num_layers=1, num_heads=5)
    with torch.no_grad():
        gate.log_alpha.copy_(
            torch.tensor([[CLOSED_BELOW - 1e-3, CLOSED_BELOW + 1e-3, 0.0, -CLOSED_BELOW + 1e-3, -20.0]])
        )
    z = gate.eval()().detach()
    assert z[0, 0] == 0.0 and z[0, 4] == 0.0
    assert 0 < z[0, 1] < 1e-3  # just above the threshold: open but tiny, and not claimed
    assert z[0, 2] == pytest.approx(0.5) and z[0, 3] == 1.0
    assert gate.claimed().tolist() == [[False, False, True, True, False]]
    assert torch.equal(gate().detach(), z)  # eval mode is deterministic


def test_initialisations():
    xavier = HardConcreteGate(num_layers=6, num_heads=12, generator=torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / 13)
    assert xavier.log_alpha.abs().max() <= bound and xavier.log_alpha.std() > bound / 3
    z = xavier.eval()().detach()
    assert 0.29 < z.min() and z.max() < 0.71  # eval gates start partly closed, as in the paper
    assert torch.equal(
        HardConcreteGate(num_layers=2, num_heads=3, init="open").eval()().detach(), torch.ones(2, 3)
    )
    with pytest.raises(ValueError, match="init"):
        HardConcreteGate(num_layers=1, num_heads=1, init="zeros")


def test_gate_in_an_encoder_samples_per_forward_in_training_and_is_a_mask_in_eval():
    torch.manual_seed(0)
    model = BertModel(
        BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99
        )
    )
    model.eval()  # no dropout: only the gate is random
    ids = torch.randint(5, 99, (2, 7))
    gate = HardConcreteGate(num_layers=2, num_heads=4, generator=torch.Generator().manual_seed(3))
    with install_head_gate(model, gate):
        gate.train()
        a, b = model(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state
        assert not torch.allclose(a, b)  # a fresh sample each forward
        gate.eval()
        gated = model(input_ids=ids).last_hidden_state
        gated.sum().backward()
        assert gate.log_alpha.grad is not None and gate.log_alpha.grad.abs().sum() > 0
    with install_head_gate(model, MaskGate(mask=gate.deterministic().detach())):
        masked = model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(gated, masked)
