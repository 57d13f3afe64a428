"""Moving-average loss balancing (He & Choi 2021, §5): equalises the magnitude of task losses."""

from __future__ import annotations

from collections import deque

import torch


class MovingAverageBalancer:
    """Scales task ``t``'s loss by ``w_t = Σ_k mean_k / mean_t`` over each task's last ``window`` losses.

    Only tasks seen so far enter the sum; the current loss is recorded before ``w_t`` is computed.
    The weight is a plain float: no gradient flows through the statistics.
    """

    def __init__(self, *, window: int = 5, intrinsic: bool = False):
        if window < 1:
            raise ValueError(f"balancer.window must be >= 1, got {window}")
        self.window, self.intrinsic = window, intrinsic
        self.history: dict[str, deque[float]] = {}

    def __call__(self, task: str, loss: torch.Tensor) -> torch.Tensor:
        value = float(loss.detach())
        self.history.setdefault(task, deque(maxlen=self.window)).append(value)
        means = {t: sum(h) / len(h) for t, h in self.history.items()}
        if means[task] <= 0:
            return loss
        weight = sum(means.values()) / means[task]
        if self.intrinsic:  # HanLP's intrinsic_weighting: also scale by current / average
            weight *= value / means[task]
        return loss * weight

    def state_dict(self) -> dict:
        return {t: list(h) for t, h in self.history.items()}

    def load_state_dict(self, state: dict) -> None:
        self.history = {t: deque(v, maxlen=self.window) for t, v in state.items()}
