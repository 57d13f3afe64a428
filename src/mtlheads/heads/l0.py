"""The objective of gated head pruning: a fixed-λ L0 penalty, or a target number of open heads.

``mode=gate`` adds ``L0Objective()`` to every mini-batch's task loss (He & Choi 2021 §3: λ times the
expected open heads per layer, averaged over layers). With ``gate.target_heads`` set, a Lagrangian
``λ₁ (E - t) + λ₂ (E - t)²`` on the expected open fraction ``E`` replaces it (Wang et al. 2020): the
multipliers are trained by gradient *ascent* (their gradients are negated), so the constraint, not a
hand-tuned λ, decides how many heads close.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtlheads.heads.gate import head_shape, install_head_gate
from mtlheads.heads.hard_concrete import HardConcreteGate

# λ per task from the paper's gate scripts (BERT-base); several tasks sharing one gate set: 0.001.
TASK_LAMBDA = {"pos": 0.01, "dep": 0.01, "con": 0.01, "srl": 0.001, "ner": 0.0002}
MULTI_TASK_LAMBDA = 0.001


def default_lambda(tasks: Sequence[str]) -> float:
    """The paper's λ for a task set (``gate.lam: null``); a task the paper did not gate gets 0.01."""
    if len(tasks) > 1:
        return MULTI_TASK_LAMBDA
    return TASK_LAMBDA.get(tasks[0], 0.01)


def target_count(target: float, total: int) -> float:
    """``gate.target_heads`` as a head count: a fraction of all heads when < 1, else a count."""
    if target <= 0 or target > total:
        raise ValueError(f"config key 'mode.gate.target_heads': {target} is not in (0, {total}]")
    return target * total if target < 1 else float(target)


class L0Objective(nn.Module):
    """``forward() -> Tensor ()``: the term added to each mini-batch's loss.

    Args:
        gate: the hard-concrete gates (owned here, so they are saved and moved with the model).
        lam: λ of the fixed penalty (unused when ``target_heads`` is set).
        target_heads: open heads wanted, a fraction (< 1) or a count; None = fixed λ.
    """

    def __init__(self, *, gate: HardConcreteGate, lam: float, target_heads: float | None = None):
        super().__init__()
        self.gate, self.lam = gate, float(lam)
        total = gate.num_layers * gate.num_heads
        self.target = None if target_heads is None else target_count(float(target_heads), total)
        if self.target is not None:
            self.multipliers = nn.Parameter(torch.zeros(2))  # λ₁, λ₂
            self.multipliers.register_hook(lambda g: -g)  # ascent: the constraint pushes back

    def forward(self) -> Tensor:
        if self.target is None:
            return self.lam * self.gate.penalty()
        total = self.gate.num_layers * self.gate.num_heads
        gap = (self.gate.expected_open() - self.target) / total  # fraction of the grid
        return self.multipliers[0] * gap + self.multipliers[1] * gap * gap

    def param_groups(self, *, gate_lr: float, multiplier_lr: float) -> list[dict]:
        """Optimizer groups (no weight decay, no schedule): the gates', and the multipliers' if any."""
        groups = [{"params": [self.gate.log_alpha], "lr": gate_lr, "weight_decay": 0.0, "constant_lr": True}]
        if self.target is not None:
            groups.append(
                {"params": [self.multipliers], "lr": multiplier_lr, "weight_decay": 0.0, "constant_lr": True}
            )
        return groups

    def summary(self) -> dict:
        """Open heads of the eval gate: count, per layer, and the claimed (layer, head) pairs (0-based)."""
        claimed = self.gate.claimed()
        return {
            "open_heads": int(claimed.sum()),
            "total_heads": claimed.numel(),
            "open_per_layer": claimed.sum(dim=1).tolist(),
            "claimed": [[int(layer), int(head)] for layer, head in claimed.nonzero().tolist()],
            "expected_open": float(self.gate.expected_open().detach()),
        }


def build_l0(gate_cfg, encoder: nn.Module, tasks: Sequence[str]) -> L0Objective | None:
    """``mode.gate`` -> hard-concrete gates hooked into ``encoder.model``, and their objective (or None).

    Args:
        gate_cfg: ``mode.gate`` (keys ``lam``, ``init``, ``target_heads``), or None for ungated modes.
        encoder: the ``WordEncoder``; its transformers model gets the gate hooks.
        tasks: the task names (``lam: null`` takes the paper's λ for them).
    """
    if not gate_cfg:
        return None
    layers, heads = head_shape(encoder.model)
    gate = HardConcreteGate(num_layers=layers, num_heads=heads, init=gate_cfg.get("init", "xavier"))
    lam = gate_cfg.get("lam")
    l0 = L0Objective(
        gate=gate,
        lam=default_lambda(tasks) if lam is None else float(lam),
        target_heads=gate_cfg.get("target_heads"),
    )
    l0.handle = install_head_gate(encoder.model, gate)  # handle.remove() ungates (mode=prune)
    return l0
