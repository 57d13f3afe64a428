"""Which task the next mini-batch comes from.

Every mini-batch holds a single task. Per epoch the schedule has ``N = Σ_t n_t`` draws, ``n_t``
being the number of batches of task ``t``; each draw picks a task by the sampler's probabilities,
and each task's batches are cycled (reshuffled at every pass), so small tasks are up-sampled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class TemperatureSampler:
    """``p_t ∝ n_t^τ`` over batch counts (He & Choi 2021 use τ = 0.8; τ=1 is proportional, τ=0 uniform)."""

    def __init__(self, *, temperature: float = 0.8):
        if temperature < 0:
            raise ValueError(f"sampler.temperature must be >= 0, got {temperature}")
        self.temperature = temperature

    def probabilities(self, batch_counts: Mapping[str, int]) -> dict[str, float]:
        weights = {t: float(n) ** self.temperature if n > 0 else 0.0 for t, n in batch_counts.items()}
        total = sum(weights.values())
        if total <= 0:
            raise ValueError(f"no task has any training batch: {dict(batch_counts)}")
        return {t: w / total for t, w in weights.items()}


class ProportionalSampler(TemperatureSampler):
    """``p_t ∝ n_t`` (MT-DNN)."""

    def __init__(self) -> None:
        super().__init__(temperature=1.0)


class UniformSampler(TemperatureSampler):
    """``p_t = 1/T`` for every task that has batches."""

    def __init__(self) -> None:
        super().__init__(temperature=0.0)


def task_schedule(
    batch_counts: Mapping[str, int], probabilities: Mapping[str, float], rng: np.random.Generator
) -> list[str]:
    """Draws ``Σ n_t`` task names i.i.d. from ``probabilities`` (one epoch of single-task batches)."""
    names = list(batch_counts)
    p = np.array([probabilities[t] for t in names], dtype=float)
    draws = rng.choice(len(names), size=sum(batch_counts.values()), p=p / p.sum())
    return [names[i] for i in draws]
