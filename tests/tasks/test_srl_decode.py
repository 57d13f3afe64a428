"""SRL decoding: the non-overlapping DP against brute force, and batch decoding of kept pairs."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from mtlheads.tasks.srl_decode import decode_srl, dp_non_overlapping


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _brute_force(spans: list[tuple[int, int, float, str]]) -> float:
    """Best score sum over ALL subsets of pairwise non-overlapping spans (the empty set scores 0)."""
    best = 0.0
    for r in range(1, len(spans) + 1):
        for subset in itertools.combinations(spans, r):
            if all(not _overlap(a, b) for a, b in itertools.combinations(subset, 2)):
                best = max(best, sum(s[2] for s in subset))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_dp_equals_brute_force_on_random_small_inputs(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(150):
        n = rng.randint(1, 8)
        all_spans = [(s, e) for s in range(n) for e in range(s, n)]
        chosen = rng.sample(all_spans, rng.randint(0, min(10, len(all_spans))))
        low = -0.5 if rng.random() < 0.3 else 0.01  # sometimes non-positive scores too
        spans = [(s, e, rng.uniform(low, 2.0), f"R{i}") for i, (s, e) in enumerate(chosen)]
        result = dp_non_overlapping(spans)
        assert result == sorted(result)
        assert all(not _overlap(a, b) for a, b in itertools.combinations(result, 2))
        score = {(s, e, lab): v for s, e, v, lab in spans}
        assert all(score[x] > 0 for x in result)
        assert sum(score[x] for x in result) == pytest.approx(_brute_force(spans))


def test_dp_hand_cases() -> None:
    assert dp_non_overlapping([]) == []
    # one long span (3.0) against two short ones inside it (2.0 + 2.0)
    spans = [(0, 3, 3.0, "A"), (0, 1, 2.0, "B"), (2, 3, 2.0, "C"), (5, 5, 0.5, "D")]
    assert dp_non_overlapping(spans) == [(0, 1, "B"), (2, 3, "C"), (5, 5, "D")]
    spans = [(0, 3, 5.0, "A"), (0, 1, 2.0, "B"), (2, 3, 2.0, "C")]
    assert dp_non_overlapping(spans) == [(0, 3, "A")]
    assert dp_non_overlapping([(1, 1, -1.0, "A")]) == []  # a negative span is never worth taking
    with pytest.raises(ValueError):
        dp_non_overlapping([(2, 1, 1.0, "A")])


def _out(scores, starts, ends, preds, arg_mask=None, pred_mask=None) -> dict[str, torch.Tensor]:
    scores = torch.tensor(scores, dtype=torch.float)
    b, a, p, _ = scores.shape
    return {
        "scores": scores,
        "arg_starts": torch.tensor(starts),
        "arg_ends": torch.tensor(ends),
        "preds": torch.tensor(preds),
        "arg_mask": torch.ones(b, a, dtype=torch.bool) if arg_mask is None else torch.tensor(arg_mask),
        "pred_mask": torch.ones(b, p, dtype=torch.bool) if pred_mask is None else torch.tensor(pred_mask),
    }


def test_decode_skips_null_predicate_spans_and_padding() -> None:
    labels = ["<null>", "ARG0", "ARG1"]
    # sentence 0: args (0,1), (2,2), (1,3), (4,4); predicates 2 and 4
    # sentence 1: one real arg (0,0) and one padding slot, one real predicate and one padding slot
    s = [[[[0, 0, 0], [0, 0, 0]] for _ in range(4)], [[[0, 0, 0], [0, 0, 0]] for _ in range(4)]]
    s[0][0][0] = [0, 2.0, 1.0]  # (0,1) for pred 2: ARG0 2.0
    s[0][1][0] = [0, 5.0, 0.0]  # (2,2) contains pred 2: skipped
    s[0][2][0] = [0, 0.5, 3.0]  # (1,3) contains pred 2: skipped
    s[0][3][0] = [0, -1.0, 0.7]  # (4,4) ARG1 0.7 for pred 2
    s[0][0][1] = [0, -1.0, -2.0]  # (0,1) for pred 4: null wins
    s[0][2][1] = [0, 0.1, 1.5]  # (1,3) for pred 4: ARG1 1.5
    s[0][1][1] = [0, 1.0, 0.0]  # (2,2) for pred 4: ARG0 1.0 < 1.5, overlaps (1,3)
    s[0][3][1] = [0, 9.0, 0.0]  # (4,4) contains pred 4: skipped
    s[1][0][0] = [0, 0.0, 0.0]  # a tie with null is not an argument
    s[1][1][0] = [0, 9.0, 9.0]  # padding arg slot
    s[1][0][1] = [0, 9.0, 9.0]  # padding predicate slot
    out = _out(
        [s[0], s[1]],
        starts=[[0, 2, 1, 4], [0, 3, 0, 0]],
        ends=[[1, 2, 3, 4], [0, 3, 0, 0]],
        preds=[[2, 4], [1, 0]],
        arg_mask=[[True] * 4, [True, False, False, False]],
        pred_mask=[[True, True], [True, False]],
    )
    assert decode_srl(out, labels) == [
        [(2, [(0, 1, "ARG0"), (4, 4, "ARG1")]), (4, [(1, 3, "ARG1")])],
        [],
    ]


def old_decode_srl(out: dict, labels: list[str]) -> list:
    """The replaced ``decode_srl`` (reference): ``dp_non_overlapping`` per (sentence, predicate)."""
    from collections import defaultdict

    scores = out["scores"].detach()
    starts, ends, preds = out["arg_starts"], out["arg_ends"], out["preds"]
    best, role = scores[..., 1:].max(-1)
    p = preds[:, None, :]
    keep = out["arg_mask"][:, :, None] & out["pred_mask"][:, None, :] & (best > 0)
    keep &= ~((starts[:, :, None] <= p) & (p <= ends[:, :, None]))
    b_idx, a_idx, p_idx = keep.nonzero(as_tuple=True)
    groups: dict = defaultdict(list)
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
    result: list = [[] for _ in range(scores.shape[0])]
    for (b, pred), spans in sorted(groups.items()):
        chosen = dp_non_overlapping(spans)
        if chosen:
            result[b].append((pred, chosen))
    return result


@pytest.mark.parametrize("seed", range(10))
def test_batched_decode_equals_the_per_predicate_decode(seed: int) -> None:
    """Random kept spans and predicates (padding slots, integer scores for ties): the same structures."""
    g = torch.Generator().manual_seed(seed)
    b, a, p, n_labels = 6, 14, 5, 5
    lengths = torch.randint(1, 12, (b,), generator=g)
    starts = (torch.rand(b, a, generator=g) * lengths[:, None]).long()
    ends = torch.minimum(starts + torch.randint(0, 4, (b, a), generator=g), lengths[:, None] - 1)
    preds = (torch.rand(b, p, generator=g) * lengths[:, None]).long()
    scores = torch.randn(b, a, p, n_labels, generator=g) * 2
    if seed % 2:
        scores = scores.round()  # ties between spans, and between a span and no span
    scores[..., 0] = 0.0
    out = {
        "scores": scores,
        "arg_starts": starts,
        "arg_ends": ends,
        "preds": preds,
        "arg_mask": torch.rand(b, a, generator=g) < 0.85,
        "pred_mask": torch.rand(b, p, generator=g) < 0.85,
    }
    labels = ["<null>"] + [f"ARG{i}" for i in range(n_labels - 1)]
    new, old = decode_srl(out, labels), old_decode_srl(out, labels)
    assert new == old
    assert sum(len(x) for x in new) > 0


def test_batched_decode_of_nothing() -> None:
    out = _out([[[[0, -1.0, -2.0]]]], starts=[[0]], ends=[[0]], preds=[[1]])
    assert decode_srl(out, ["<null>", "A", "B"]) == old_decode_srl(out, ["<null>", "A", "B"]) == [[]]
