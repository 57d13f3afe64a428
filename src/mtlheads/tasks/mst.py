"""First-order non-projective dependency decoding: maximum spanning arborescence (Chu-Liu-Edmonds).

Conventions as in :mod:`mtlheads.tasks.eisner`: node 0 is ROOT and words are 1..n, ``scores[h, d]`` is the
score of the arc head ``h`` → dependent ``d`` and a tree's score is the sum of its arc scores. Any tree in
which every word reaches ROOT is allowed, crossing arcs included.

The search is the classic contract-and-expand scheme: every word takes its best head; if that graph has
a cycle, the cycle is contracted into one node (an arc entering it at ``v`` is rescored by how much it beats
the cycle's own arc into ``v``), the smaller graph is solved, and the cycle is expanded again, broken at the
node where the chosen entering arc lands.

Constraints are folded into the scores rather than into the search, so the search stays the plain one:

- ``-inf`` entries forbid arcs. They become a finite penalty larger than any difference between two trees'
  finite scores, so the result uses as few forbidden arcs as possible (none whenever a tree without them
  exists) and is never NaN-poisoned by ``-inf - -inf`` in the rescoring.
- ``single_root=True`` (the default, as in Eisner and the reference's ``multiroot=False``) subtracts from
  every ROOT arc a constant larger than any difference between two trees' other arcs. Every tree pays it at
  least once, so the best penalised tree has exactly one ROOT child and is the best single-rooted tree of
  the original scores. The cost is float64 precision on the order of (that constant) x 1e-16, far below any
  score gap that matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mtlheads.tasks.eisner import decode_on_device


def mst(scores: np.ndarray, *, single_root: bool = True) -> np.ndarray:
    """Maximum-scoring dependency tree, projective or not.

    Each contraction step is O(n^2) in numpy and there are at most n/2 of them, so the work is O(n^3) in the
    worst case with an O(n) Python loop per step.

    Args:
        scores: (n+1, n+1) arc scores, ``scores[h, d]`` for head ``h`` and dependent ``d``; row/column 0 is
            ROOT. ``-inf`` entries forbid arcs. ``scores[:, 0]`` and the diagonal are ignored.
        single_root: Require exactly one word whose head is ROOT.

    Returns:
        (n+1,) int64 heads: ``heads[d]`` is the head of word ``d`` (0 = ROOT) and ``heads[0] == -1``. If every
        tree needs a forbidden arc, the tree with the fewest of them (then the highest score) is returned;
        the ROOT constraint holds regardless.

    Raises:
        ValueError: ``scores`` is not square, or a used entry is NaN or ``+inf``.
    """
    w = np.array(scores, dtype=np.float64)  # a copy: rescaled in place below
    size = w.shape[0]
    if w.shape != (size, size):
        raise ValueError(f"scores must be square, got {w.shape}")
    n = size - 1
    if n <= 0:
        return np.full(size, -1, dtype=np.int64)
    usable = ~np.eye(size, dtype=bool)
    usable[:, 0] = False  # ROOT has no head
    if np.isnan(w[usable]).any() or np.isposinf(w[usable]).any():
        raise ValueError("scores must be finite or -inf (NaN or +inf found)")
    allowed = usable & np.isfinite(w)
    lo, hi = (w[allowed].min(), w[allowed].max()) if allowed.any() else (0.0, 0.0)
    spread = n * (hi - lo)  # bound on the difference between two trees' finite scores
    w -= lo  # finite arcs now in [0, hi - lo]
    forbidden = spread + 1.0
    w[usable & ~allowed] = -forbidden
    if single_root:
        w[0, 1:] -= n * forbidden + spread + 1.0  # outweighs everything below it: the fewest ROOT arcs win
    w[~usable] = -np.inf  # self-loops and arcs into ROOT can never be part of a tree
    heads = _chu_liu_edmonds(w)
    heads[0] = -1
    return heads


def _chu_liu_edmonds(w: np.ndarray) -> np.ndarray:
    """Maximum arborescence rooted at node 0.

    A loop rather than recursion (one level per contracted cycle, up to n/2 of them), so long sentences never
    meet Python's recursion limit.

    Args:
        w: (m, m) scores ``w[h, d]``; ``-inf`` exactly on column 0 and the diagonal, finite elsewhere.

    Returns:
        (m,) int64 heads with ``heads[0]`` unspecified.
    """
    contractions = []
    while True:
        heads = w.argmax(0)  # every node's best head; column 0 is all -inf, so heads[0] is meaningless
        cycle = _find_cycle(heads)
        if cycle is None:
            break
        w, record = _contract(w, heads, np.asarray(cycle))
        contractions.append(record)
    for record in reversed(contractions):
        heads = _expand(heads, *record)
    return heads


def _contract(
    w: np.ndarray, heads: np.ndarray, cyc: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Merges the cycle ``cyc`` of ``heads`` into one node, the last of the returned (r+1, r+1) graph.

    Returns:
        The contracted scores and what ``_expand`` needs: the kept nodes ``rest`` (r,), the cycle ``cyc``
        (k,), the cycle's heads (k,), and per kept node the cycle node its best arc enters (r,) and the
        cycle node its best arc from the cycle leaves (r,).
    """
    in_cycle = np.zeros(w.shape[0], dtype=bool)
    in_cycle[cyc] = True
    rest = np.flatnonzero(~in_cycle)  # ROOT stays at index 0: it has no head, so it is never on a cycle
    r = len(rest)
    # Entering at v replaces the cycle's arc heads[v] -> v: score it relative to that arc.
    enter = w[np.ix_(rest, cyc)] - w[heads[cyc], cyc][None, :]  # (r, k)
    enter_at = enter.argmax(1)
    leave = w[np.ix_(cyc, rest)]  # (k, r)
    leave_from = leave.argmax(0)
    small = np.empty((r + 1, r + 1))
    small[:r, :r] = w[np.ix_(rest, rest)]
    small[:r, r] = enter[np.arange(r), enter_at]
    small[r, :r] = leave[leave_from, np.arange(r)]  # column 0 stays -inf: nothing enters ROOT
    small[r, r] = -np.inf
    return small, (rest, cyc, heads[cyc], enter_at, leave_from)


def _expand(
    sub: np.ndarray,
    rest: np.ndarray,
    cyc: np.ndarray,
    cycle_heads: np.ndarray,
    enter_at: np.ndarray,
    leave_from: np.ndarray,
) -> np.ndarray:
    """Heads on the graph before ``_contract`` from the (r+1,) heads ``sub`` of the contracted graph."""
    r = len(rest)
    heads = np.empty(r + len(cyc), dtype=np.int64)
    from_cycle = sub[1:r] == r  # kept words whose head is the contracted node
    heads[rest[1:]] = np.where(from_cycle, cyc[leave_from[1:]], rest[np.minimum(sub[1:r], r - 1)])
    heads[cyc] = cycle_heads  # keep the cycle's arcs but one:
    u = sub[r]  # the contracted node's head, an index into rest
    heads[cyc[enter_at[u]]] = rest[u]  # the node the chosen arc enters drops its cycle arc
    return heads


def _find_cycle(heads: np.ndarray) -> list[int] | None:
    """A cycle of the head graph (node 0 has no head), or None if every node reaches node 0."""
    parent = heads.tolist()
    state = [0] * len(parent)  # 0 = unseen, 1 = on the current walk, 2 = reaches node 0
    state[0] = 2
    for start in range(1, len(parent)):
        walk, v = [], start
        while state[v] == 0:
            state[v] = 1
            walk.append(v)
            v = parent[v]
        if state[v] == 1:  # the walk ran into itself
            return walk[walk.index(v) :]
        for u in walk:
            state[u] = 2
    return None


def is_tree(heads: Sequence[int], *, single_root: bool = True) -> bool:
    """Whether ``heads`` is a well-formed dependency tree, projective or not.

    Well-formed means: every head is in ``0..n``, no word heads itself, at least one word attaches to ROOT
    (exactly one if ``single_root``), and every word reaches ROOT (no cycles).

    Args:
        heads: (n,) heads of words 1..n, 1-based with 0 = ROOT (no entry for ROOT itself).
        single_root: Require exactly one ROOT child.

    Returns:
        True for a well-formed tree. An empty sentence counts as one.
    """
    h = np.asarray(heads, dtype=np.int64).reshape(-1)
    n = h.shape[0]
    if n == 0:
        return True
    if h.min() < 0 or h.max() > n:
        return False
    n_roots = int((h == 0).sum())
    if n_roots == 0 or (single_root and n_roots > 1):
        return False
    ancestor = np.concatenate(([0], h))
    for _ in range(int(np.ceil(np.log2(n + 1))) + 1):  # pointer doubling: ancestor at distance 2^k
        ancestor = ancestor[ancestor]
    return bool((ancestor == 0).all())  # a self-loop or cycle never reaches 0


def are_trees(
    heads: torch.Tensor, lengths: torch.Tensor, *, single_root: bool = True, projective: bool = False
) -> torch.Tensor:
    """:func:`is_tree` (or, with ``projective``, ``eisner.is_projective_tree``) of every sentence at once.

    Args:
        heads: (B, N+1) long; ``heads[b, 1:n_b+1]`` are sentence ``b``'s heads (1-based, 0 = ROOT); column 0
            and everything past ``n_b`` are ignored.
        lengths: (B,) words per sentence.
        single_root: Require exactly one ROOT child.
        projective: Also require no two arcs to cross (ROOT's arcs included).

    Returns:
        (B,) bool, the per-sentence checks' answers (an empty sentence counts as a tree).
    """
    heads, lengths = heads.long(), lengths.to(device=heads.device, dtype=torch.long)
    size = heads.shape[1]
    pos = torch.arange(size, device=heads.device)
    real = (pos[None, :] >= 1) & (pos[None, :] <= lengths[:, None])  # (B, N+1) the words
    in_range = (heads >= 0) & (heads <= lengths[:, None])
    ok = (in_range | ~real).all(1)
    h = torch.where(real & in_range, heads, 0)  # (B, N+1): ROOT, padding and bad heads point at 0
    roots = ((h == 0) & real).sum(1)
    ok &= roots == 1 if single_root else roots >= 1
    ancestor = h.clone()
    for _ in range(max(1, (size - 1).bit_length()) + 1):  # pointer doubling: ancestor at distance 2^k
        ancestor = ancestor.gather(1, ancestor)
    ok &= ((ancestor == 0) | ~real).all(1)  # a self-loop or cycle never reaches 0
    if projective:
        left, right = torch.minimum(h, pos), torch.maximum(h, pos)  # (B, N+1) each arc's span
        both = real[:, :, None] & real[:, None, :]
        crossing = (
            (left[:, :, None] < left[:, None, :])
            & (left[:, None, :] < right[:, :, None])
            & (right[:, :, None] < right[:, None, :])
        )
        ok &= ~(crossing & both).any((1, 2))
    return ok | (lengths == 0)


def mst_torch(s_arc: torch.Tensor, *, single_root: bool = True) -> torch.Tensor:
    """MST on a parser's (dependent, head) score matrix, returned on the same device.

    Args:
        s_arc: (n+1, n+1) scores with ``s_arc[d, h]`` for dependent ``d`` and head ``h`` (position 0 = ROOT).
        single_root: Require exactly one ROOT child.

    Returns:
        (n+1,) long heads, ``heads[0] == -1``.
    """
    return decode_on_device(mst, s_arc, single_root=single_root)
