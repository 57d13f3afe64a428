"""Length-bucketed batches under a token budget, with dynamic padding.

Sentences are sorted by subword length and cut into contiguous chunks whose *padded* size
(longest sentence × number of sentences) stays within ``max_tokens`` and whose sentence count
stays within ``max_sentences``. The chunks, not the sentences, are shuffled each epoch, so every
batch holds sentences of similar length and pads little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_budget_batches(
    lengths: Sequence[int],
    *,
    max_tokens: int,
    max_sentences: int,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
) -> list[list[int]]:
    """Cuts sentence indices into length-bucketed batches.

    Args:
        lengths: length (subwords, special tokens included) of each sentence.
        max_tokens: bound on ``max(len) * len(batch)``. A sentence longer than the budget gets a
            batch of its own rather than being dropped.
        max_sentences: bound on the number of sentences per batch.
        shuffle: shuffle the order of the batches (not their contents' sorting).
        rng: numpy generator used when ``shuffle`` is True.

    Returns:
        Batches as lists of indices into ``lengths``; every index appears exactly once.
    """
    if max_tokens < 1 or max_sentences < 1:
        raise ValueError(f"max_tokens and max_sentences must be >= 1, got {max_tokens}, {max_sentences}")
    # A stable sort keeps equal-length sentences in file order: batches are deterministic.
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order.tolist():
        n = int(lengths[i])
        grown = max(longest, n)
        if current and (grown * (len(current) + 1) > max_tokens or len(current) >= max_sentences):
            batches.append(current)
            current, grown = [], n
        current.append(i)
        longest = grown
    if current:
        batches.append(current)
    if shuffle:
        rng = rng if rng is not None else np.random.default_rng()
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return batches
