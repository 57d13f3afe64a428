"""The hard-concrete (L0) head gate of gated head pruning (Louizos et al. 2018; Voita et al. 2019;
He & Choi 2021 §3): one ``log α`` per head, a stochastic gate in training, a deterministic one in eval.

Constants follow the Stem Cell Hypothesis code: temperature β = 0.33, stretch (l, r) = (-0.1, 1.1).

* training sample (one per head per forward, shared by every sentence and position):
  ``u ~ U(ε, 1-ε)``, ``s = σ((log u - log(1-u) + log α) / β)``, ``z = clamp(s (r - l) + l, 0, 1)``;
* eval gate: ``ẑ = clamp(σ(log α) (r - l) + l, 0, 1)``, exactly 0 for ``log α <= log(-l / r) ≈ -2.398``;
* ``P(z != 0) = σ(log α - β log(-l / r))``: the expected number of open heads, the L0 penalty.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mtlheads.heads.gate import HeadGate

BETA, LOW, HIGH, EPS = 0.33, -0.1, 1.1, 1e-6
CLAIMED = 1e-3  # a head is "claimed" (open) when its eval gate exceeds this (He & Choi 2021)


class HardConcreteGate(HeadGate):
    """Hard-concrete gates for an (L, H) grid of heads.

    Args:
        num_layers: L.
        num_heads: H.
        init: ``"xavier"`` (the paper: log α ~ U(±√(6/(H+1))) per layer, so eval gates start in about
            [0.3, 0.7]) or ``"open"`` (log α = 3: every eval gate starts at exactly 1).
        generator: optional RNG for the training samples (tests); default the global torch RNG.
    """

    def __init__(
        self,
        *,
        num_layers: int,
        num_heads: int,
        init: str = "xavier",
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_layers=num_layers, num_heads=num_heads)
        self.log_alpha = nn.Parameter(torch.empty(num_layers, num_heads))
        self.generator = generator
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "xavier") -> None:
        with torch.no_grad():
            if init == "xavier":  # per layer a (1, H, 1, 1) tensor in the paper: fan_in = H, fan_out = 1
                bound = math.sqrt(6.0 / (self.num_heads + 1))
                self.log_alpha.uniform_(-bound, bound, generator=self.generator)
            elif init == "open":
                self.log_alpha.fill_(3.0)
            else:
                raise ValueError(f"gate init must be 'xavier' or 'open', got {init!r}")

    def forward(self) -> Tensor:
        """(L, H) multipliers: a fresh sample in training mode, the deterministic gate in eval mode."""
        return self.sample() if self.training else self.deterministic()

    def sample(self) -> Tensor:
        u = torch.rand(self.log_alpha.shape, generator=self.generator, device=self.log_alpha.device)
        u = u.clamp(EPS, 1 - EPS)
        s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + self.log_alpha) / BETA)
        return (s * (HIGH - LOW) + LOW).clamp(0.0, 1.0)

    def deterministic(self) -> Tensor:
        return (torch.sigmoid(self.log_alpha) * (HIGH - LOW) + LOW).clamp(0.0, 1.0)

    def prob_open(self) -> Tensor:
        """(L, H) probability that a training sample is non-zero."""
        return torch.sigmoid(self.log_alpha - BETA * math.log(-LOW / HIGH)).clamp(EPS, 1 - EPS)

    def penalty(self) -> Tensor:
        """The L0 penalty: expected open heads per layer, averaged over layers (``(1/L) Σ_l Σ_h P``)."""
        return self.prob_open().sum(dim=1).mean()

    def expected_open(self) -> Tensor:
        """Expected number of open heads in the whole grid (the quantity a target sparsity constrains)."""
        return self.prob_open().sum()

    def claimed(self) -> Tensor:
        """(L, H) bool: heads whose eval gate exceeds 1e-3."""
        return self.deterministic() > CLAIMED


def hard_concrete_cdf(z: float, log_alpha: float) -> float:
    """P(training sample <= z) for one gate, 0 <= z < 1 (analytic: the stretched, clamped concrete).

    ``s̄ = s (r - l) + l <= z``  <=>  ``s <= (z - l) / (r - l) = q``  <=>
    ``logit(u) <= β logit(q) - log α``, and ``logit(u)`` of a uniform ``u`` is standard logistic.
    """
    q = (z - LOW) / (HIGH - LOW)
    return 1.0 / (1.0 + math.exp(-(BETA * math.log(q / (1 - q)) - log_alpha)))
