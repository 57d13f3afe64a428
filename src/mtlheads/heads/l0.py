"""``heads=hard_concrete``: hard-concrete head gates trained with an L0 objective (gated head pruning).

Every training mini-batch adds :meth:`L0Gate.regularizer` to its task loss (He & Choi 2021 §3: λ times
the expected open heads per layer, averaged over layers). With ``target_heads`` set, a Lagrangian
``λ₁ (E - t) + λ₂ (E - t)²`` on the expected open fraction ``E`` replaces it (Wang et al. 2020): the
multipliers are trained by gradient *ascent* (their gradients are negated), so the constraint, not a
hand-tuned λ, decides how many heads close.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlheads.heads.hard_concrete import CLAIMED, HardConcreteGate

# λ per task from the paper's gate scripts (BERT-base); several tasks sharing one gate set: 0.001.
TASK_LAMBDA = {"pos": 0.01, "dep": 0.01, "con": 0.01, "srl": 0.001, "ner": 0.0002}
MULTI_TASK_LAMBDA = 0.001
# Where another encoder's gate scripts (the Stem Cell Hypothesis' en_<encoder>/gate/*.py) differ from
# BERT-base's, keyed on the encoder config's ``family`` (conf/encoder/*.yaml). Families the paper did not
# gate (minilm, albert, xlm-roberta, an unknown encoder) take TASK_LAMBDA.
FAMILY_LAMBDA = {
    "roberta": {"srl": 0.002},
    "electra": {"srl": 0.002},
    "deberta": {"srl": 0.002, "dep": 0.02},
}
LAMBDA = {family: {**TASK_LAMBDA, **own} for family, own in {"bert": {}, **FAMILY_LAMBDA}.items()}


def default_lambda(tasks: Sequence[str], family: str | None = None) -> float:
    """The paper's λ for a task set on an encoder family (``heads.lam: null``).

    Several tasks sharing one gate set get 0.001 on every encoder; one task gets ``LAMBDA[family][task]``, the
    BERT-base value for a family the paper did not gate, and 0.01 for a task the paper did not gate.
    """
    if len(tasks) > 1:
        return MULTI_TASK_LAMBDA
    return LAMBDA.get(str(family), TASK_LAMBDA).get(tasks[0], 0.01)


def target_count(target: float, total: int) -> float:
    """``heads.target_heads`` as a head count: a fraction of all heads when < 1, else a count."""
    if target <= 0 or target > total:
        raise ValueError(f"config key 'heads.target_heads': {target} is not in (0, {total}]")
    return target * total if target < 1 else float(target)


class L0Gate(HardConcreteGate):
    """Hard-concrete gates that carry their own objective, optimizer groups and report.

    Args:
        num_layers: L.
        num_heads: H.
        lam: λ of the fixed penalty (unused when ``target_heads`` is set).
        target_heads: open heads wanted, a fraction (< 1) or a count; None = fixed λ.
        init: ``"xavier"`` or ``"open"`` (see :class:`HardConcreteGate`).
        generator: optional RNG for the training samples (tests).
    """

    learnable = True

    def __init__(
        self,
        *,
        num_layers: int,
        num_heads: int,
        lam: float,
        target_heads: float | None = None,
        init: str = "xavier",
        generator: torch.Generator | None = None,
    ):
        super().__init__(num_layers=num_layers, num_heads=num_heads, init=init, generator=generator)
        self.lam = float(lam)
        total = num_layers * num_heads
        self.target = None if target_heads is None else target_count(float(target_heads), total)
        if self.target is not None:
            self.multipliers = nn.Parameter(torch.zeros(2))  # λ₁, λ₂
            self.multipliers.register_hook(lambda g: -g)  # ascent: the constraint pushes back

    def regularizer(self) -> Tensor:
        if self.target is None:
            return self.lam * self.penalty()
        gap = (self.expected_open() - self.target) / (self.num_layers * self.num_heads)  # grid fraction
        return self.multipliers[0] * gap + self.multipliers[1] * gap * gap

    def param_groups(self, optim) -> list[dict]:
        """The gates' group and the multipliers' (if any): no weight decay, constant lr (AdamW without decay
        is the paper's separate Adam)."""
        groups = [{"params": [self.log_alpha], "lr": optim.gate_lr, "weight_decay": 0.0, "constant_lr": True}]
        if self.target is not None:
            groups.append(
                {
                    "params": [self.multipliers],
                    "lr": optim.multiplier_lr,
                    "weight_decay": 0.0,
                    "constant_lr": True,
                }
            )
        return groups

    def eval_values(self) -> Tensor:
        return self.deterministic().detach()

    def summary(self, threshold: float = CLAIMED) -> dict:
        return {**super().summary(threshold), "expected_open": float(self.expected_open().detach())}


def hard_concrete_gate(
    *,
    num_layers: int,
    num_heads: int,
    tasks: Sequence[str],
    lam: float | None = None,
    init: str = "xavier",
    target_heads: float | None = None,
    family: str | None = None,
) -> L0Gate:
    """``conf/heads/hard_concrete.yaml`` -> an :class:`L0Gate`; ``lam: null`` takes the paper's λ for the
    task set and the encoder ``family`` (``encoder.family``)."""
    return L0Gate(
        num_layers=num_layers,
        num_heads=num_heads,
        lam=default_lambda(tasks, family) if lam is None else float(lam),
        target_heads=target_heads,
        init=init,
    )
