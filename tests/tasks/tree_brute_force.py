"""Brute force over every head assignment of a short sentence, for the tree decoders' tests."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np


@functools.cache
def all_trees(n: int, single_root: bool, accept: Callable[[tuple[int, ...], bool], bool]) -> np.ndarray:
    """Every head assignment of ``n`` words (0 = ROOT) that ``accept`` takes: (count, n)."""
    trees = [h for h in itertools.product(range(n + 1), repeat=n) if accept(h, single_root)]
    return np.array(trees, dtype=np.int64).reshape(len(trees), n)


def best_trees(
    scores: np.ndarray, single_root: bool, accept: Callable[[tuple[int, ...], bool], bool]
) -> tuple[np.ndarray, np.ndarray]:
    """(every accepted tree, its score ``Σ_d scores[head(d), d]``) for an (n+1, n+1) score matrix."""
    n = scores.shape[0] - 1
    trees = all_trees(n, single_root, accept)
    return trees, scores[trees, np.arange(1, n + 1)].sum(1)
