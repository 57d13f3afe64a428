"""Batched Tree-CRF over binary bracketings (Zhang, Zhou & Li 2020; reference §3.4).

A sentence of ``n`` words has fenceposts ``0..n``; a tree is a full binary bracketing: ``2n - 1`` spans
``(i, j)``, ``0 <= i < j <= n``, the whole sentence ``(0, n)`` and every width-1 span ``(k, k + 1)``
included. Its score is the sum of its spans' scores ``scores[b, i, j]``.

All functions take ``scores`` (B, N+1, N+1) with ``N`` the longest sentence and ``lengths`` (B,) words per
sentence; entries outside ``0 <= i < j <= lengths[b]`` are ignored (they may hold anything, even NaN).
Half-precision scores are upcast to float32.
The dynamic programmes loop over span widths only; every width is one batched tensor operation over all
sentences and start positions. Two charts hold the same inside scores indexed by (start, width) and by
(end, width), so the left and right halves of every split are plain slices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def span_mask(lengths: Tensor, n: int) -> Tensor:
    """Valid spans.

    Args:
        lengths: (B,) words per sentence.
        n: Largest fencepost index N (the charts are (N+1, N+1)).

    Returns:
        (B, N+1, N+1) bool, True at ``[b, i, j]`` when ``0 <= i < j <= lengths[b]``.
    """
    pos = torch.arange(n + 1, device=lengths.device)
    upper = pos[:, None] < pos[None, :]
    return upper & (pos[None, None, :] <= lengths[:, None, None])


def _charts(scores: Tensor, lengths: Tensor, *, use_max: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Inside (or Viterbi) charts by (start, width) and by (end, width), float32 or wider, and with
    ``use_max`` CKY's best split offsets ``[b, i, w]`` (best split of span ``(i, i + w)`` minus ``i``)."""
    batch, n1, _ = scores.shape
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()  # the log-space DP adds up O(n) terms: keep it in float32 under autocast
    scores = scores.masked_fill(~span_mask(lengths, n1 - 1), 0.0)  # finite everywhere
    by_start = scores.new_zeros(batch, n1, n1)  # [b, i, w] = chart value of span (i, i + w)
    by_end = scores.new_zeros(batch, n1, n1)  # [b, j, w] = chart value of span (j - w, j)
    splits = torch.zeros(batch, n1, n1, dtype=torch.long, device=scores.device) if use_max else None
    for w in range(1, n1):
        m = n1 - w  # spans (i, i + w) for i = 0 .. N - w
        value = scores.diagonal(w, 1, 2)  # (B, m): scores[b, i, i + w]
        if w > 1:
            left = by_start[:, :m, 1:w]  # spans (i, i + k), k = 1 .. w-1
            right = by_end[:, w:, 1:w].flip(-1)  # spans (i + k, i + w), k = 1 .. w-1
            if use_max:
                best, arg = (left + right).max(-1)
                value = value + best
                splits[:, :m, w] = arg + 1
            else:
                value = value + (left + right).logsumexp(-1)
        by_start[:, :m, w] = value
        by_end[:, w:, w] = value
    return by_start, by_end, splits


class _Inside(torch.autograd.Function):
    """logZ with a hand-written backward: the outside pass in probability space.

    Autograd through the chart's per-width slice writes copies the whole chart once per width; the outside
    pass instead walks the widths down once, handing each span's marginal to its children in proportion to
    the split weights (the softmax of the inside logsumexp), recomputed from the saved charts.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, lengths: Tensor) -> Tensor:
        with torch.no_grad():
            by_start, by_end, _ = _charts(scores, lengths, use_max=False)
        ctx.save_for_backward(by_start, by_end, lengths)
        ctx.in_dtype = scores.dtype
        return by_start[torch.arange(len(lengths), device=scores.device), 0, lengths]

    @staticmethod
    def backward(ctx, grad_log_z: Tensor) -> tuple[Tensor, None]:
        by_start, by_end, lengths = ctx.saved_tensors
        batch, n1, _ = by_start.shape
        rows = torch.arange(batch, device=by_start.device)
        # mu_start[b, i, w] + mu_end[b, i + w, w] = d logZ / d score of span (i, i + w), once complete
        mu_start, mu_end = torch.zeros_like(by_start), torch.zeros_like(by_end)
        mu_start[rows, 0, lengths] = grad_log_z.to(by_start.dtype)
        grad = torch.zeros_like(by_start)
        for w in range(n1 - 1, 0, -1):  # wider spans first: a span's parents are all wider
            m = n1 - w
            mu = mu_start[:, :m, w] + mu_end[:, w:, w]  # (B, m): every parent has handed its share down
            grad.diagonal(w, 1, 2).copy_(mu)
            if w > 1:
                left, right = by_start[:, :m, 1:w], by_end[:, w:, 1:w].flip(-1)
                share = mu.unsqueeze(-1) * (left + right).softmax(-1)  # (B, m, w - 1) per split k
                mu_start[:, :m, 1:w] += share
                mu_end[:, w:, 1:w] += share.flip(-1)
        return grad.to(ctx.in_dtype), None


def inside(scores: Tensor, lengths: Tensor) -> Tensor:
    """Log partition function over all binary trees, differentiable w.r.t. ``scores``.

    Args:
        scores: (B, N+1, N+1) span scores, ``scores[b, i, j]`` for span ``(i, j)``.
        lengths: (B,) long, words per sentence (``1 <= lengths[b] <= N``).

    Returns:
        (B,) ``logZ[b] = logsumexp over trees of the sum of their span scores``; its gradient w.r.t.
        ``scores`` is the span marginals (0 outside the valid spans), from the outside pass.
    """
    lengths = lengths.to(device=scores.device, dtype=torch.long)
    return _Inside.apply(scores, lengths)


def marginals(scores: Tensor, lengths: Tensor) -> Tensor:
    """Span marginal probabilities ``d logZ / d scores``, usable under ``no_grad``/``inference_mode``.

    Works on a detached copy, so it never touches the caller's graph.

    Args:
        scores: (B, N+1, N+1) span scores.
        lengths: (B,) words per sentence.

    Returns:
        (B, N+1, N+1) probabilities that each span is in the tree (0 outside the valid spans).
    """
    with torch.inference_mode(False), torch.enable_grad():
        leaf = scores.detach().clone().requires_grad_(True)
        log_z = inside(leaf, lengths.detach().clone())
        (grad,) = torch.autograd.grad(log_z.sum(), leaf)
    return grad


@torch.no_grad()
def cky(scores: Tensor, lengths: Tensor) -> list[list[tuple[int, int]]]:
    """Highest-scoring binary tree of each sentence.

    Args:
        scores: (B, N+1, N+1) span scores (raw scores or marginals).
        lengths: (B,) words per sentence.

    Returns:
        Per sentence its ``2n - 1`` spans ``(i, j)`` in pre-order (root first, left before right).
    """
    lengths = lengths.to(device=scores.device, dtype=torch.long)
    _, _, splits = _charts(scores.detach(), lengths, use_max=True)
    return backtrack(splits.cpu().numpy(), lengths.cpu().numpy())


def backtrack(splits: np.ndarray, lengths: np.ndarray) -> list[list[tuple[int, int]]]:
    """The trees of a batch from CKY's best split offsets, one tree level at a time for all sentences.

    Pre-order (root first, left subtree before right) lists a binary bracketing's spans by start, and among
    spans with the same start (nested ones) the wider first: the left subtree's spans all start before the
    right subtree's. So the spans are collected level by level and sorted by ``(start, -end)``.

    Args:
        splits: (B, N+1, N+1) ``[b, i, w]`` = best split of span ``(i, i + w)`` minus ``i``.
        lengths: (B,) words per sentence.

    Returns:
        Per sentence its ``2n - 1`` spans ``(i, j)`` in pre-order.
    """
    b = np.flatnonzero(lengths > 0)
    i, j = np.zeros_like(b), lengths[b].astype(np.int64)
    found = []
    while len(b):
        found.append((b, i, j))
        inner = j - i > 1
        b, i, j = b[inner], i[inner], j[inner]
        k = i + splits[b, i, j - i]
        b, i, j = np.concatenate([b, b]), np.concatenate([i, k]), np.concatenate([k, j])
    trees: list[list[tuple[int, int]]] = [[] for _ in range(len(lengths))]
    if found:
        b, i, j = (np.concatenate(x) for x in zip(*found, strict=True))
        order = np.lexsort((-j, i, b))
        spans = list(zip(i[order].tolist(), j[order].tolist(), strict=True))
        ends = np.cumsum(np.bincount(b, minlength=len(lengths)))
        for s, (lo, hi) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
            trees[s] = spans[lo:hi]
    return trees


def tree_score(scores: Tensor, spans: list[list[tuple[int, int]]]) -> Tensor:
    """Sum of span scores of one given tree per sentence.

    Args:
        scores: (B, N+1, N+1).
        spans: Per sentence a list of ``(i, j)``.

    Returns:
        (B,) scores (differentiable).
    """
    chart = torch.zeros_like(scores, dtype=torch.bool)
    for b, tree in enumerate(spans):
        for i, j in tree:
            chart[b, i, j] = True
    return scores.masked_fill(~chart, 0.0).sum((1, 2))
