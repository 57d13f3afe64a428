"""First-order projective dependency decoding (Eisner 1996) and a tree checker.

Conventions: node 0 is ROOT and words are 1..n. ``scores[h, d]`` is the score of the arc head ``h`` →
dependent ``d``. A tree's score is the sum of its arc scores. Projectivity is checked with ROOT's arcs
included (ROOT sits left of every word), which is the tree family Eisner's algorithm searches.

By default exactly one word attaches to ROOT (``single_root=True``), as in the reference's decoder
(HanLP/supar ``istree(..., multiroot=False)`` and supar's ``eisner``, which forbids a complete ROOT span
that stops short of the sentence end). Pass ``single_root=False`` to allow several ROOT children.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_LEFT, _RIGHT = 0, 1  # span direction: LEFT = head at the right end t, RIGHT = head at the left end s


def eisner(scores: np.ndarray, *, single_root: bool = True) -> np.ndarray:
    """Maximum-scoring projective dependency tree.

    The DP runs one numpy step per span width (all spans of that width and all their split points at once),
    so the Python loop is O(n) and the arithmetic O(n^3).

    Args:
        scores: (n+1, n+1) arc scores, ``scores[h, d]`` for head ``h`` and dependent ``d``; row/column 0 is
            ROOT. ``-inf`` entries forbid arcs. ``scores[:, 0]`` and the diagonal are ignored.
        single_root: Require exactly one word whose head is ROOT.

    Returns:
        (n+1,) int64 heads: ``heads[d]`` is the head of word ``d`` (0 = ROOT) and ``heads[0] == -1``.
        ``heads[1:]`` is therefore in the 1-based CoNLL convention.
    """
    s_arc = np.asarray(scores, dtype=np.float64)
    size = s_arc.shape[0]
    if s_arc.shape != (size, size):
        raise ValueError(f"scores must be square, got {s_arc.shape}")
    n = size - 1
    heads = np.full(size, -1, dtype=np.int64)
    if n <= 0:
        return heads
    complete = np.full((2, size, size), -np.inf)
    incomplete = np.full((2, size, size), -np.inf)
    complete_split = np.zeros((2, size, size), dtype=np.int64)
    incomplete_split = np.zeros((2, size, size), dtype=np.int64)
    diag = np.arange(size)
    complete[:, diag, diag] = 0.0
    for w in range(1, size):
        s = np.arange(size - w)
        t = s + w
        rows = np.arange(size - w)
        r = s[:, None] + np.arange(w)[None, :]  # split points s..t-1, (size-w, w)
        # I(s,t): C_right(s, r) + C_left(r+1, t), then add the arc t->s (LEFT) or s->t (RIGHT).
        v = complete[_RIGHT][s[:, None], r] + complete[_LEFT][r + 1, t[:, None]]
        best = v.argmax(1)
        vmax, split = v[rows, best], r[rows, best]
        incomplete[_LEFT, s, t] = vmax + s_arc[t, s]
        incomplete[_RIGHT, s, t] = vmax + s_arc[s, t]
        incomplete_split[_LEFT, s, t] = split
        incomplete_split[_RIGHT, s, t] = split
        incomplete[_LEFT, 0, w] = -np.inf  # ROOT is never a dependent
        # C_left(s,t) = C_left(s, r) + I_left(r, t), r in s..t-1
        v = complete[_LEFT][s[:, None], r] + incomplete[_LEFT][r, t[:, None]]
        best = v.argmax(1)
        complete[_LEFT, s, t] = v[rows, best]
        complete_split[_LEFT, s, t] = r[rows, best]
        # C_right(s,t) = I_right(s, r) + C_right(r, t), r in s+1..t
        v = incomplete[_RIGHT][s[:, None], r + 1] + complete[_RIGHT][r + 1, t[:, None]]
        best = v.argmax(1)
        complete[_RIGHT, s, t] = v[rows, best]
        complete_split[_RIGHT, s, t] = r[rows, best] + 1
        if single_root and w < n:
            complete[_RIGHT, 0, w] = -np.inf  # ROOT's only child must span to the sentence end
    stack = [(True, _RIGHT, 0, n)]  # (is_complete, direction, s, t)
    while stack:
        is_complete, direction, s_, t_ = stack.pop()
        if s_ == t_:
            continue
        if is_complete:
            r_ = complete_split[direction, s_, t_]
            if direction == _LEFT:
                stack += [(True, _LEFT, s_, r_), (False, _LEFT, r_, t_)]
            else:
                stack += [(False, _RIGHT, s_, r_), (True, _RIGHT, r_, t_)]
        else:
            r_ = incomplete_split[direction, s_, t_]
            if direction == _LEFT:
                heads[s_] = t_
            else:
                heads[t_] = s_
            stack += [(True, _RIGHT, s_, r_), (True, _LEFT, r_ + 1, t_)]
    return heads


def tree_score(scores: np.ndarray, heads: Sequence[int]) -> float:
    """Sum of ``scores[heads[d-1], d]`` over words ``d = 1..n`` (``heads`` is words-only, 1-based)."""
    h = np.asarray(heads, dtype=np.int64)
    return float(np.asarray(scores, dtype=np.float64)[h, np.arange(1, len(h) + 1)].sum())


def is_projective_tree(heads: Sequence[int], *, single_root: bool = True) -> bool:
    """Whether ``heads`` is a well-formed projective dependency tree.

    Well-formed means: every head is in ``0..n``, no word heads itself, at least one word attaches to ROOT
    (exactly one if ``single_root``), and every word reaches ROOT (no cycles). Projective means no two arcs
    cross, ROOT's arcs included (ROOT at position 0).

    Args:
        heads: (n,) heads of words 1..n, 1-based with 0 = ROOT (no entry for ROOT itself).
        single_root: Require exactly one ROOT child.

    Returns:
        True for a well-formed projective tree. An empty sentence counts as one.
    """
    h = np.asarray(heads, dtype=np.int64).reshape(-1)
    n = h.shape[0]
    if n == 0:
        return True
    if h.min() < 0 or h.max() > n:
        return False
    dep = np.arange(1, n + 1)
    if (h == dep).any():
        return False
    n_roots = int((h == 0).sum())
    if n_roots == 0 or (single_root and n_roots > 1):
        return False
    ancestor = np.concatenate(([0], h))
    for _ in range(int(np.ceil(np.log2(n + 1))) + 1):  # pointer doubling: ancestor at distance 2^k
        ancestor = ancestor[ancestor]
    if (ancestor != 0).any():
        return False
    left, right = np.minimum(h, dep), np.maximum(h, dep)
    crossing = (
        (left[:, None] < left[None, :]) & (left[None, :] < right[:, None]) & (right[:, None] < right[None, :])
    )
    return not bool(crossing.any())


def eisner_batch(scores: np.ndarray, lengths: Sequence[int], *, single_root: bool = True) -> np.ndarray:
    """:func:`eisner` on a batch: one numpy step per span width for all sentences at once.

    Every sentence goes through exactly the float operations and tie-breaking of :func:`eisner` on its own
    ``(n+1, n+1)`` block: spans inside ``0..n_b`` only ever read entries inside that block, so the padding
    never reaches them. Only the backtracking (O(n) per sentence) is a Python loop.

    Args:
        scores: (B, N+1, N+1) arc scores ``scores[b, h, d]``; sentence ``b`` uses ``[:n_b+1, :n_b+1]``.
        lengths: (B,) words per sentence, ``0 <= n_b <= N``.
        single_root: Require exactly one word whose head is ROOT.

    Returns:
        (B, N+1) int64 heads, ``-1`` at ROOT and past each sentence's end.
    """
    s_arc = np.array(scores, dtype=np.float64)  # a copy: the padding is overwritten below
    batch, size = s_arc.shape[0], s_arc.shape[-1]
    if s_arc.shape != (batch, size, size):
        raise ValueError(f"scores must be (B, N+1, N+1), got {s_arc.shape}")
    lengths = np.asarray(lengths, dtype=np.int64).reshape(batch)
    heads = np.full((batch, size), -1, dtype=np.int64)
    if batch == 0 or size <= 1:
        return heads
    pos = np.arange(size)
    outside = (pos[None, :] > lengths[:, None])[:, :, None] | (pos[None, :] > lengths[:, None])[:, None, :]
    s_arc[outside] = 0.0  # finite: spans beyond a sentence's end stay NaN-free (and are never read)
    complete = np.full((2, batch, size, size), -np.inf)
    incomplete = np.full((2, batch, size, size), -np.inf)
    complete_split = np.zeros((2, batch, size, size), dtype=np.int64)
    incomplete_split = np.zeros((2, batch, size, size), dtype=np.int64)
    complete[:, :, pos, pos] = 0.0
    c_left, c_right, i_left, i_right = (
        complete[_LEFT],
        complete[_RIGHT],
        incomplete[_LEFT],
        incomplete[_RIGHT],
    )
    for w in range(1, size):
        s = np.arange(size - w)
        t = s + w
        rows = np.arange(size - w)[None, :]
        r = s[:, None] + np.arange(w)[None, :]  # split points s..t-1, (size-w, w)

        def best_of(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (B, size-w, w) -> max, argmax
            arg = v.argmax(2)
            return np.take_along_axis(v, arg[..., None], 2)[..., 0], arg

        vmax, arg = best_of(c_right[:, s[:, None], r] + c_left[:, r + 1, t[:, None]])
        split = r[rows, arg]
        i_left[:, s, t] = vmax + s_arc[:, t, s]
        i_right[:, s, t] = vmax + s_arc[:, s, t]
        incomplete_split[_LEFT][:, s, t] = split
        incomplete_split[_RIGHT][:, s, t] = split
        i_left[:, 0, w] = -np.inf  # ROOT is never a dependent
        vmax, arg = best_of(c_left[:, s[:, None], r] + i_left[:, r, t[:, None]])
        c_left[:, s, t] = vmax
        complete_split[_LEFT][:, s, t] = r[rows, arg]
        vmax, arg = best_of(i_right[:, s[:, None], r + 1] + c_right[:, r + 1, t[:, None]])
        c_right[:, s, t] = vmax
        complete_split[_RIGHT][:, s, t] = r[rows, arg] + 1
        if single_root:
            c_right[w < lengths, 0, w] = -np.inf  # ROOT's only child must span to the sentence end
    for b, n in enumerate(lengths.tolist()):
        stack = [(True, _RIGHT, 0, n)] if n > 0 else []
        while stack:
            is_complete, direction, s_, t_ = stack.pop()
            if s_ == t_:
                continue
            if is_complete:
                r_ = complete_split[direction, b, s_, t_]
                if direction == _LEFT:
                    stack += [(True, _LEFT, s_, r_), (False, _LEFT, r_, t_)]
                else:
                    stack += [(False, _RIGHT, s_, r_), (True, _RIGHT, r_, t_)]
            else:
                r_ = incomplete_split[direction, b, s_, t_]
                if direction == _LEFT:
                    heads[b, s_] = t_
                else:
                    heads[b, t_] = s_
                stack += [(True, _RIGHT, s_, r_), (True, _LEFT, r_ + 1, t_)]
    return heads


def eisner_torch(s_arc: torch.Tensor, *, single_root: bool = True) -> torch.Tensor:
    """Eisner on a parser's (dependent, head) score matrix, returned on the same device.

    Args:
        s_arc: (n+1, n+1) scores with ``s_arc[d, h]`` for dependent ``d`` and head ``h`` (position 0 = ROOT).
        single_root: Require exactly one ROOT child.

    Returns:
        (n+1,) long heads, ``heads[0] == -1``.
    """
    return decode_on_device(eisner, s_arc, single_root=single_root, dtype=torch.float32)


def decode_on_device(
    decoder, s_arc: torch.Tensor, *, single_root: bool, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``decoder`` (numpy, ``scores[h, d]``) on a parser's ``s_arc[d, h]``; heads on ``s_arc``'s device."""
    heads = decoder(s_arc.detach().to(dtype).cpu().numpy().T, single_root=single_root)
    return torch.from_numpy(heads).to(s_arc.device)
