"""Eisner decoding vs brute force over every projective tree, and the tree checker vs hand cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from tree_brute_force import all_trees, best_trees

from mtlheads.tasks.eisner import eisner, eisner_torch, is_projective_tree, tree_score


def _ref_is_projective_tree(heads: tuple[int, ...], single_root: bool) -> bool:
    """Independent definition: a tree rooted at 0 in which every arc's head dominates the words it spans."""
    n = len(heads)
    parent = (None, *heads)
    roots = sum(h == 0 for h in heads)
    if roots == 0 or (single_root and roots != 1):
        return False
    ancestors: list[set[int]] = [set()]
    for d in range(1, n + 1):
        seen, node = {d}, d
        while node != 0:
            node = parent[node]
            if node in seen:
                return False  # cycle (self-loops included)
            seen.add(node)
        ancestors.append(seen)
    for d in range(1, n + 1):
        h = parent[d]
        for k in range(min(h, d) + 1, max(h, d)):
            if h not in ancestors[k]:
                return False
    return True


def _all_trees(n: int, single_root: bool) -> np.ndarray:
    return all_trees(n, single_root, _ref_is_projective_tree)


def _brute_force(scores: np.ndarray, single_root: bool) -> tuple[np.ndarray, np.ndarray]:
    return best_trees(scores, single_root, _ref_is_projective_tree)


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_eisner_matches_brute_force_random_scores(n: int, single_root: bool) -> None:
    rng = np.random.default_rng(1000 * n + single_root)
    for _ in range(40):
        scores = rng.normal(size=(n + 1, n + 1))
        trees, totals = _brute_force(scores, single_root)
        heads = eisner(scores, single_root=single_root)
        assert heads.shape == (n + 1,) and heads[0] == -1
        assert is_projective_tree(heads[1:], single_root=single_root)
        assert tree_score(scores, heads[1:]) == pytest.approx(totals.max(), abs=1e-9)
        order = np.sort(totals)
        if len(order) == 1 or order[-1] - order[-2] > 1e-9:  # unique optimum: same tree
            assert heads[1:].tolist() == trees[totals.argmax()].tolist()


@pytest.mark.parametrize("single_root", [True, False])
def test_eisner_max_score_with_ties(single_root: bool) -> None:
    rng = np.random.default_rng(7)
    for n in range(1, 6):
        for _ in range(30):
            scores = rng.integers(-2, 3, size=(n + 1, n + 1)).astype(float)
            _, totals = _brute_force(scores, single_root)
            heads = eisner(scores, single_root=single_root)
            assert is_projective_tree(heads[1:], single_root=single_root)
            assert tree_score(scores, heads[1:]) == pytest.approx(totals.max())


def test_tree_counts_are_the_known_projective_counts() -> None:
    # single-root projective trees: 1, 2, 7, 30, 143; with several ROOT children: C(3n, n) / (2n + 1)
    assert [len(_all_trees(n, True)) for n in range(1, 6)] == [1, 2, 7, 30, 143]
    assert [len(_all_trees(n, False)) for n in range(1, 6)] == [1, 3, 12, 55, 273]


@pytest.mark.parametrize("single_root", [True, False])
def test_is_projective_tree_agrees_with_reference_on_all_assignments(single_root: bool) -> None:
    for n in range(1, 6):
        for heads in itertools.product(range(n + 1), repeat=n):
            assert is_projective_tree(heads, single_root=single_root) == _ref_is_projective_tree(
                heads, single_root
            ), heads


def test_is_projective_tree_hand_cases() -> None:
    assert is_projective_tree([2, 0, 2])  # 1 <- 2 -> 3
    assert is_projective_tree([])  # nothing to repair
    assert not is_projective_tree([0, 3, 2])  # 2 <-> 3 cycle
    assert not is_projective_tree([2, 1])  # cycle, no root
    assert not is_projective_tree([1, 0])  # self-loop
    assert not is_projective_tree([0, 5])  # head out of range
    assert not is_projective_tree([3, 4, 0, 3])  # arcs 3->1 and 4->2 cross
    assert not is_projective_tree([3, 4, 0, 3], single_root=False)
    assert not is_projective_tree([3, 0, 2, 2])  # arc 3->1 crosses ROOT->2
    assert not is_projective_tree([0, 0])  # two ROOT children
    assert is_projective_tree([0, 0], single_root=False)
    assert is_projective_tree([0, 0, 2], single_root=False)  # two ROOT children, 3 under 2


def test_eisner_respects_forbidden_arcs() -> None:
    n = 4
    scores = np.zeros((n + 1, n + 1))
    scores[:, :] = -np.inf
    for d in range(1, n + 1):  # only a left-to-right chain is allowed: 0 -> 1 -> 2 -> 3 -> 4
        scores[d - 1, d] = 0.0
    assert eisner(scores).tolist() == [-1, 0, 1, 2, 3]


def test_eisner_single_root_constraint_changes_the_answer() -> None:
    scores = np.full((4, 4), -1.0)
    scores[0, 1:] = 5.0  # every word prefers ROOT
    assert eisner(scores, single_root=False).tolist() == [-1, 0, 0, 0]
    heads = eisner(scores, single_root=True)
    assert int((heads[1:] == 0).sum()) == 1 and is_projective_tree(heads[1:])


def test_eisner_torch_takes_dependent_head_layout() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 6))  # [head, dep]
    s_arc = torch.tensor(scores.T, dtype=torch.float32)  # [dep, head]
    out = eisner_torch(s_arc)
    assert out.dtype == torch.long and out.tolist() == eisner(scores.astype(np.float32)).tolist()


def test_eisner_on_long_sentences() -> None:
    scores = np.random.default_rng(0).normal(size=(151, 151))
    heads = eisner(scores)  # (speed: benchmarks/step_profile.py, no timed asserts)
    assert is_projective_tree(heads[1:])
