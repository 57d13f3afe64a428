"""Tree-CRF: inside vs brute-force enumeration, CKY optimality, marginals vs finite differences."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from mtlheads.tasks.treecrf import cky, inside, marginals, span_mask, tree_score


@functools.cache
def all_trees(i: int, j: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Every full binary bracketing of fenceposts i..j (span lists, root first)."""
    if j - i == 1:
        return (((i, j),),)
    return tuple(
        ((i, j), *left, *right)
        for k in range(i + 1, j)
        for left in all_trees(i, k)
        for right in all_trees(k, j)
    )


def _batch(lengths: list[int], seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scores with NaN written outside each sentence's valid spans (must be ignored)."""
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    scores = torch.randn(len(lengths), n + 1, n + 1, generator=g, dtype=dtype) * 2
    lens = torch.tensor(lengths)
    scores = scores.masked_fill(~span_mask(lens, n), float("nan"))
    return scores, lens


def _tree_value(scores: torch.Tensor, b: int, tree) -> float:
    return sum(float(scores[b, i, j]) for i, j in tree)


def test_catalan_numbers() -> None:
    assert [len(all_trees(0, n)) for n in range(1, 7)] == [1, 1, 2, 5, 14, 42]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_inside_equals_enumeration_in_a_mixed_batch(seed: int) -> None:
    lengths = [6, 1, 3, 5, 2, 4]
    scores, lens = _batch(lengths, seed)
    log_z = inside(scores, lens)
    for b, n in enumerate(lengths):
        values = torch.tensor([_tree_value(scores, b, t) for t in all_trees(0, n)], dtype=torch.float64)
        brute = torch.logsumexp(values, 0)
        assert math.isclose(float(log_z[b]), float(brute), rel_tol=1e-10, abs_tol=1e-10)
    assert torch.isfinite(log_z).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cky_tree_has_the_maximum_score(seed: int) -> None:
    lengths = [5, 6, 1, 2, 4, 3]
    scores, lens = _batch(lengths, seed)
    trees = cky(scores, lens)
    for b, n in enumerate(lengths):
        best = max(_tree_value(scores, b, t) for t in all_trees(0, n))
        assert len(trees[b]) == 2 * n - 1 and trees[b][0] == (0, n)
        assert tuple(trees[b]) in all_trees(0, n)  # a valid bracketing, in pre-order
        assert math.isclose(_tree_value(scores, b, trees[b]), best, rel_tol=1e-12)
    clean = scores.nan_to_num(0.0)
    assert torch.allclose(
        tree_score(clean, trees),
        torch.tensor(
            [max(_tree_value(scores, b, t) for t in all_trees(0, n)) for b, n in enumerate(lengths)],
            dtype=clean.dtype,
        ),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_marginals_match_central_finite_differences(seed: int) -> None:
    lengths = [4, 2, 5]
    scores, lens = _batch(lengths, seed)
    scores = scores.nan_to_num(0.0)
    probs = marginals(scores, lens)
    eps = 1e-6
    valid = span_mask(lens, max(lengths))
    for b, i, j in valid.nonzero().tolist():
        plus, minus = scores.clone(), scores.clone()
        plus[b, i, j] += eps
        minus[b, i, j] -= eps
        fd = (inside(plus, lens)[b] - inside(minus, lens)[b]) / (2 * eps)
        assert abs(float(fd) - float(probs[b, i, j])) < 1e-7
    assert (probs[~valid] == 0).all()
    assert ((probs >= 0) & (probs <= 1 + 1e-12)).all()
    # every tree has 2n - 1 spans, so the expected number of spans is 2n - 1
    assert torch.allclose(probs.sum((1, 2)), 2 * lens.double() - 1)
    # a span's marginal is the total probability of the trees containing it
    log_z = inside(scores, lens)
    b, n = 2, lengths[2]
    for i, j in [(0, 1), (1, 3), (2, 5)]:
        mass = sum(
            math.exp(_tree_value(scores, b, t) - float(log_z[b])) for t in all_trees(0, n) if (i, j) in t
        )
        assert math.isclose(mass, float(probs[b, i, j]), rel_tol=1e-9)


def test_marginals_under_inference_mode_and_backward_through_inside() -> None:
    scores, lens = _batch([3, 5], 7, dtype=torch.float32)
    scores = scores.nan_to_num(0.0)
    expected = marginals(scores, lens)
    with torch.inference_mode():
        inf_scores, inf_lens = scores.clone(), lens.clone()
        probs = marginals(inf_scores, inf_lens)
        trees = cky(probs, inf_lens)
    assert torch.allclose(probs, expected)
    assert [len(t) for t in trees] == [5, 9]
    leaf = scores.clone().requires_grad_()
    inside(leaf, lens).sum().backward()
    assert torch.allclose(leaf.grad, expected, atol=1e-6)


def _autograd_log_z(scores: torch.Tensor, n: int) -> torch.Tensor:
    """logZ of one sentence by the plain inside recursion over a dict chart, differentiated by autograd."""
    chart = {(i, i + 1): scores[i, i + 1] for i in range(n)}
    for w in range(2, n + 1):
        for i in range(n - w + 1):
            j = i + w
            splits = torch.stack([chart[i, k] + chart[k, j] for k in range(i + 1, j)])
            chart[i, j] = scores[i, j] + torch.logsumexp(splits, 0)
    return chart[0, n]


@pytest.mark.parametrize("seed", [0, 1])
def test_outside_pass_gradient_equals_autograd_through_the_recursion(seed: int) -> None:
    """inside()'s hand-written backward (outside pass) against autograd of the plain recursion, with a
    different upstream gradient per sentence; and torch's gradcheck on float64."""
    lengths = [7, 1, 4, 6, 2]
    scores, lens = _batch(lengths, seed)
    scores = scores.nan_to_num(0.0)
    weights = torch.linspace(-1.5, 2.0, len(lengths), dtype=torch.float64)
    leaf = scores.clone().requires_grad_()
    (inside(leaf, lens) * weights).sum().backward()
    for b, n in enumerate(lengths):
        ref_leaf = scores[b].clone().requires_grad_()
        (weights[b] * _autograd_log_z(ref_leaf, n)).backward()
        assert torch.allclose(leaf.grad[b], ref_leaf.grad, atol=1e-12), f"sentence {b}"
    small, small_lens = _batch([3, 1, 4], seed)
    small = small.nan_to_num(0.0).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: inside(s, small_lens), (small,))


def test_long_batch_is_finite() -> None:
    """Float32, n = 50, B = 8, scores ~ N(0, 10²): logZ and marginals stay finite (log-space DP)."""
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor([50, 10, 37, 1, 49, 50, 2, 25])
    scores = torch.randn(8, 51, 51, generator=g) * 10
    log_z = inside(scores, lens)
    probs = marginals(scores, lens)
    assert torch.isfinite(log_z).all() and torch.isfinite(probs).all()
    assert torch.allclose(probs.sum((1, 2)), 2 * lens.float() - 1, atol=1e-2)


def test_half_precision_is_upcast() -> None:
    scores, lens = _batch([4, 2], 3, dtype=torch.float32)
    scores = scores.nan_to_num(0.0)
    log_z = inside(scores.bfloat16(), lens)
    assert log_z.dtype == torch.float32
    assert torch.allclose(log_z, inside(scores.bfloat16().float(), lens))
    assert cky(scores.bfloat16(), lens) == cky(scores.bfloat16().float(), lens)


def old_cky(scores: torch.Tensor, lengths: torch.Tensor) -> list[list[tuple[int, int]]]:
    """The replaced ``cky`` (reference): the same DP, then a stack walk per sentence."""
    from mtlheads.tasks.treecrf import _charts

    lengths = lengths.to(device=scores.device, dtype=torch.long)
    _, _, splits = _charts(scores.detach(), lengths, use_max=True)
    split_rows = splits.cpu().tolist()
    trees = []
    for b, n in enumerate(lengths.tolist()):
        spans: list[tuple[int, int]] = []
        stack = [(0, n)] if n > 0 else []
        while stack:
            i, j = stack.pop()
            spans.append((i, j))
            if j - i > 1:
                k = i + split_rows[b][i][j - i]
                stack += [(k, j), (i, k)]
        trees.append(spans)
    return trees


@pytest.mark.parametrize("seed", range(8))
def test_batched_backtracking_equals_the_stack_walk(seed: int) -> None:
    """Random and integer (tied) scores, lengths 0..12: the same spans in the same (pre-)order."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 13, (9,), generator=g)
    scores = torch.randn(9, 13, 13, generator=g) * 2
    if seed % 2:
        scores = scores.round()
    assert cky(scores, lengths) == old_cky(scores, lengths)
