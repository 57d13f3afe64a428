"""SRL decoding: per kept predicate, the best set of non-overlapping arguments (reference §3.5).

As ELIT's ``srl_decode`` / ``_dp_decode_non_overlapping_spans`` (without the unused core-role constraint):
an argument candidate is a kept span whose best non-null role scores above null (the fixed 0), spans
containing the predicate are skipped, and a dynamic programme over word positions picks the
non-overlapping subset with the largest total score. Predicates with no argument are not output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

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
    """Decode a batch of pair scores into predicate-argument structures.

    Args:
        out: The SRL decoder output: ``scores`` (B, A, P, |L|) with column 0 = null (0),
            ``arg_starts``/``arg_ends``/``arg_mask`` (B, A), ``preds``/``pred_mask`` (B, P).
        labels: Role names by index (0 = null).

    Returns:
        Per sentence, ``[(predicate, [(start, end, role), ...]), ...]`` sorted by predicate and position,
        only predicates with at least one argument.
    """
    scores = out["scores"].detach()
    starts, ends, preds = out["arg_starts"], out["arg_ends"], out["preds"]
    best, role = scores[..., 1:].max(-1)  # (B, A, P): best non-null role (index - 1)
    p = preds[:, None, :]
    keep = out["arg_mask"][:, :, None] & out["pred_mask"][:, None, :] & (best > 0)
    keep &= ~((starts[:, :, None] <= p) & (p <= ends[:, :, None]))  # span containing the predicate
    b_idx, a_idx, p_idx = keep.nonzero(as_tuple=True)
    groups: dict[tuple[int, int], list[SpanIn]] = defaultdict(list)
    rows = zip(
        b_idx.tolist(),
        preds[b_idx, p_idx].tolist(),
        starts[b_idx, a_idx].tolist(),
        ends[b_idx, a_idx].tolist(),
        best[keep].tolist(),
        role[keep].tolist(),
        strict=True,
    )
    for b, pred, s, e, score, r in rows:
        groups[(b, pred)].append((s, e, score, labels[r + 1]))
    result: list[list[tuple[int, list]]] = [[] for _ in range(scores.shape[0])]
    for (b, pred), spans in sorted(groups.items()):
        chosen = dp_non_overlapping(spans)
        if chosen:
            result[b].append((pred, chosen))
    return result
