"""SRL decoding: per kept predicate, the best set of non-overlapping arguments (reference §3.5).

As ELIT's ``srl_decode`` / ``_dp_decode_non_overlapping_spans`` (without the unused core-role constraint):
an argument candidate is a kept span whose best non-null role scores above null (the fixed 0), spans
containing the predicate are skipped, and a dynamic programme over word positions picks the
non-overlapping subset with the largest total score. Predicates with no argument are not output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

SpanIn = tuple[int, int, float, object]  # (start, end, score, label), inclusive ends


def dp_non_overlapping(spans: Sequence[SpanIn]) -> list[tuple[int, int, object]]:
    """Weighted interval scheduling: the non-overlapping subset of ``spans`` with the largest score sum.

    ``best[t]`` is the best total over spans lying inside positions ``[0, t)``; a span ``(s, e)`` extends
    ``best[s]`` to ``best[e + 1]``. Spans with a non-positive score are never chosen (the empty set
    scores 0); among equal totals the earliest-found solution is kept.

    Args:
        spans: ``(start, end, score, label)`` with ``0 <= start <= end``.

    Returns:
        The chosen ``(start, end, label)``, sorted by position.
    """
    if not spans:
        return []
    by_end: dict[int, list[SpanIn]] = defaultdict(list)
    for span in spans:
        start, end = span[0], span[1]
        if not 0 <= start <= end:
            raise ValueError(f"bad span ({start}, {end})")
        by_end[end].append(span)
    n = max(by_end) + 1
    best = [0.0] * (n + 1)
    back: list[tuple[int, int, object] | None] = [None] * (n + 1)
    for t in range(1, n + 1):
        best[t] = best[t - 1]
        for start, end, score, label in by_end.get(t - 1, ()):
            if best[start] + score > best[t]:
                best[t], back[t] = best[start] + score, (start, end, label)
    chosen: list[tuple[int, int, object]] = []
    t = n
    while t > 0:
        step = back[t]
        if step is None:
            t -= 1
        else:
            chosen.append(step)
            t = step[0]
    return chosen[::-1]


def decode_srl(out: dict[str, torch.Tensor], labels: Sequence[str]) -> list[list[tuple[int, list]]]:
    """Decode a batch of pair scores into predicate-argument structures, all predicates at once.

    The same answer as running :func:`dp_non_overlapping` on each (sentence, predicate) group of argument
    candidates in turn (ties included): :func:`batched_dp` runs that DP for every group of the batch in one
    loop over word positions.

    Args:
        out: The SRL decoder output: ``scores`` (B, A, P, |L|) with column 0 = null (0),
            ``arg_starts``/``arg_ends``/``arg_mask`` (B, A), ``preds``/``pred_mask`` (B, P).
        labels: Role names by index (0 = null).

    Returns:
        Per sentence, ``[(predicate, [(start, end, role), ...]), ...]`` sorted by predicate and position,
        only predicates with at least one argument.
    """
    scores = out["scores"].detach()
    starts, ends, preds = out["arg_starts"].cpu(), out["arg_ends"].cpu(), out["preds"].cpu()
    best, role = (t.cpu() for t in scores[..., 1:].max(-1))  # (B, A, P): best non-null role (index - 1)
    p = preds[:, None, :]
    keep = out["arg_mask"].cpu()[:, :, None] & out["pred_mask"].cpu()[:, None, :] & (best > 0)
    keep &= ~((starts[:, :, None] <= p) & (p <= ends[:, :, None]))  # span containing the predicate
    result: list[list[tuple[int, list]]] = [[] for _ in range(scores.shape[0])]
    b_idx, a_idx, p_idx = keep.nonzero(as_tuple=True)  # kept pairs in (sentence, slot, predicate slot) order
    if not len(b_idx):
        return result
    # One group per (sentence, predicate word), sorted; its candidates are its kept pairs in the order above,
    # the order the per-group DP saw them in (a stable sort keeps it).
    width = int(preds.max()) + 1
    key = (b_idx * width + preds[b_idx, p_idx]).numpy()
    order = np.argsort(key, kind="stable")
    keys, first, counts = np.unique(key[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(keys)), counts)
    rank = np.arange(len(order)) - first[group]  # the candidate's place in its group
    G, K = len(keys), int(counts.max())
    dense = {}
    for name, values, fill in (
        ("start", starts[b_idx, a_idx], 0),
        ("end", ends[b_idx, a_idx], -1),
        ("score", best[b_idx, a_idx, p_idx].double(), 0.0),
        ("role", role[b_idx, a_idx, p_idx], 0),
    ):
        dense[name] = np.full((G, K), fill, dtype=values.numpy().dtype)
        dense[name][group, rank] = values.numpy()[order]
    valid = np.zeros((G, K), dtype=bool)
    valid[group, rank] = True
    chosen = batched_dp(dense["start"], dense["end"], dense["score"], valid)
    for g, k in enumerate(keys.tolist()):
        if chosen[g]:
            spans = [
                (int(dense["start"][g, c]), int(dense["end"][g, c]), labels[dense["role"][g, c] + 1])
                for c in chosen[g]
            ]
            result[k // width].append((k % width, spans))
    return result


def batched_dp(
    starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, valid: np.ndarray
) -> list[list[int]]:
    """:func:`dp_non_overlapping` of G span sets at once: one vectorised step per word position.

    Per position ``t`` every group keeps ``best[t - 1]`` or takes the FIRST of its spans ending at
    ``t - 1`` (in slot order) whose ``best[start] + score`` is the largest and beats it: exactly what the
    sequential scan's strict ``>`` keeps. The float64 sums are the scan's own.

    Args:
        starts, ends: (G, A) inclusive span bounds.
        scores: (G, A) float64.
        valid: (G, A) bool, the spans that take part.

    Returns:
        Per group the chosen slots, sorted by position.
    """
    G = starts.shape[0]
    n = int(np.where(valid, ends, -1).max()) + 1 if valid.any() else 0
    best = np.zeros((G, n + 1))
    back = np.full((G, n + 1), -1, dtype=np.int64)
    rows = np.arange(G)
    for t in range(1, n + 1):
        here = valid & (ends == t - 1)
        cand = np.where(here, np.take_along_axis(best, np.where(here, starts, 0), 1) + scores, -np.inf)
        arg = cand.argmax(1)  # the first slot with the largest value
        top = cand[rows, arg]
        take = top > best[:, t - 1]
        best[:, t] = np.where(take, top, best[:, t - 1])
        back[:, t] = np.where(take, arg, -1)
    chosen: list[list[int]] = [[] for _ in range(G)]
    t = np.full(G, n)
    while (t > 0).any():  # walk every group back from its end at once
        step = back[rows, t]
        took = (t > 0) & (step >= 0)
        for g in np.flatnonzero(took).tolist():
            chosen[g].append(int(step[g]))
        t = np.where(took, starts[rows, np.maximum(step, 0)], np.maximum(t - 1, 0))
    return [c[::-1] for c in chosen]
