"""Chu-Liu-Edmonds decoding vs brute force over every tree, vs Eisner, and the tree checker vs hand cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from tree_brute_force import all_trees, best_trees

from mtlheads.tasks.eisner import eisner, is_projective_tree, tree_score
from mtlheads.tasks.mst import is_tree, mst, mst_torch


def _ref_is_tree(heads: tuple[int, ...], single_root: bool) -> bool:
    """Independent definition: following heads from every word reaches ROOT without revisiting a node."""
    roots = sum(h == 0 for h in heads)
    if roots == 0 or (single_root and roots != 1):
        return False
    parent = (None, *heads)
    for d in range(1, len(heads) + 1):
        seen, node = {d}, d
        while node != 0:
            node = parent[node]
            if node in seen:
                return False  # cycle (self-loops included)
            seen.add(node)
    return True


def _all_trees(n: int, single_root: bool) -> np.ndarray:
    return all_trees(n, single_root, _ref_is_tree)


def _brute_force(scores: np.ndarray, single_root: bool) -> tuple[np.ndarray, np.ndarray]:
    return best_trees(scores, single_root, _ref_is_tree)


def _check_is_tree(heads: np.ndarray, n: int, single_root: bool) -> None:
    assert heads.shape == (n + 1,) and heads.dtype == np.int64 and heads[0] == -1
    assert _ref_is_tree(tuple(heads[1:].tolist()), single_root)


def test_tree_counts_are_cayleys() -> None:
    # every tree on n words + ROOT: (n+1)^(n-1) (Cayley); with one ROOT child: n^(n-1)
    assert [len(_all_trees(n, False)) for n in range(1, 7)] == [(n + 1) ** (n - 1) for n in range(1, 7)]
    assert [len(_all_trees(n, True)) for n in range(1, 7)] == [n ** (n - 1) for n in range(1, 7)]


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_mst_matches_brute_force_random_scores(n: int, single_root: bool) -> None:
    rng = np.random.default_rng(1000 * n + single_root)
    for _ in range(40):
        scores = rng.normal(size=(n + 1, n + 1))
        trees, totals = _brute_force(scores, single_root)
        heads = mst(scores, single_root=single_root)
        _check_is_tree(heads, n, single_root)
        assert tree_score(scores, heads[1:]) == pytest.approx(totals.max(), abs=1e-9)
        order = np.sort(totals)
        if len(order) == 1 or order[-1] - order[-2] > 1e-9:  # unique optimum: the same tree
            assert heads[1:].tolist() == trees[totals.argmax()].tolist()


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_mst_matches_brute_force_with_forbidden_arcs(n: int, single_root: bool) -> None:
    rng = np.random.default_rng(2000 * n + single_root)
    n_infeasible = 0
    for _ in range(60):
        scores = rng.normal(size=(n + 1, n + 1))
        scores[rng.random(scores.shape) < rng.uniform(0.2, 0.7)] = -np.inf
        trees, totals = _brute_force(scores, single_root)
        heads = mst(scores, single_root=single_root)
        _check_is_tree(heads, n, single_root)
        if np.isfinite(totals.max()):
            assert tree_score(scores, heads[1:]) == pytest.approx(totals.max(), abs=1e-9)
        else:  # no tree avoids forbidden arcs: the fewest of them, still a (single-rooted) tree
            n_infeasible += 1
            forbidden = np.isinf(scores[trees, np.arange(1, n + 1)]).sum(1)
            assert np.isinf(scores[heads[1:], np.arange(1, n + 1)]).sum() == forbidden.min()
    assert 0 < n_infeasible < 60  # both branches ran


@pytest.mark.parametrize("single_root", [True, False])
def test_mst_max_score_with_ties(single_root: bool) -> None:
    rng = np.random.default_rng(7)
    for n in range(1, 6):
        for _ in range(30):
            scores = rng.integers(-2, 3, size=(n + 1, n + 1)).astype(float)
            _, totals = _brute_force(scores, single_root)
            heads = mst(scores, single_root=single_root)
            _check_is_tree(heads, n, single_root)
            assert tree_score(scores, heads[1:]) == totals.max()


def test_single_root_is_the_best_over_every_forced_root_child() -> None:
    # Beyond brute force: the best single-rooted tree is the best, over r, of the best tree whose only
    # allowed ROOT arc is 0 -> r.
    rng = np.random.default_rng(11)
    for n in (8, 12, 20):
        for _ in range(10):
            scores = rng.normal(size=(n + 1, n + 1))
            best = -np.inf
            for r in range(1, n + 1):
                forced = scores.copy()
                forced[0, 1:] = -np.inf
                forced[0, r] = scores[0, r]
                best = max(best, tree_score(scores, mst(forced, single_root=False)[1:]))
            heads = mst(scores, single_root=True)
            _check_is_tree(heads, n, True)
            assert tree_score(scores, heads[1:]) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("single_root", [True, False])
def test_mst_at_least_eisner_and_equal_when_the_best_tree_is_projective(single_root: bool) -> None:
    rng = np.random.default_rng(5)
    n_projective = n_strictly_better = 0
    for _ in range(300):
        n = int(rng.integers(2, 10))
        scores = rng.normal(size=(n + 1, n + 1))
        heads_mst = mst(scores, single_root=single_root)
        heads_eisner = eisner(scores, single_root=single_root)
        s_mst, s_eisner = tree_score(scores, heads_mst[1:]), tree_score(scores, heads_eisner[1:])
        assert s_mst >= s_eisner - 1e-9
        if is_projective_tree(heads_mst[1:], single_root=single_root):
            n_projective += 1
            assert s_mst == pytest.approx(s_eisner, abs=1e-9)
        else:
            n_strictly_better += s_mst > s_eisner + 1e-9
    assert n_projective > 30 and n_strictly_better > 30  # both cases are exercised


def test_mst_finds_the_non_projective_tree_eisner_cannot() -> None:
    # "A hearing is scheduled on the issue today": the PP "on the issue" modifies "hearing" across the verb.
    #     1 A  2 hearing  3 is  4 scheduled  5 on  6 the  7 issue  8 today
    gold = [2, 4, 4, 0, 7, 7, 2, 4]  # 2 -> 7 crosses 4 -> 8 and ROOT -> 4
    scores = np.full((9, 9), -5.0)
    for d, h in enumerate(gold, start=1):
        scores[h, d] = 5.0
    assert not is_projective_tree(gold) and is_tree(gold)
    assert mst(scores)[1:].tolist() == gold
    heads_eisner = eisner(scores)
    assert heads_eisner[1:].tolist() != gold
    assert tree_score(scores, heads_eisner[1:]) < tree_score(scores, gold)


def test_single_root_constraint_changes_the_answer() -> None:
    scores = np.full((4, 4), -1.0)
    scores[0, 1:] = 5.0  # every word prefers ROOT
    assert mst(scores, single_root=False).tolist() == [-1, 0, 0, 0]
    heads = mst(scores, single_root=True)
    assert int((heads[1:] == 0).sum()) == 1 and is_tree(heads[1:])
    assert tree_score(scores, heads[1:]) == 5.0 - 1.0 - 1.0


def test_mst_respects_forbidden_arcs() -> None:
    # only the non-projective chain ROOT -> 2 -> 4 -> 1 -> 3 is allowed
    scores = np.full((5, 5), -np.inf)
    for h, d in ((0, 2), (2, 4), (4, 1), (1, 3)):
        scores[h, d] = -10.0
    assert mst(scores).tolist() == [-1, 4, 0, 1, 2]
    assert mst(scores, single_root=False).tolist() == [-1, 4, 0, 1, 2]


def test_mst_edge_cases_and_errors() -> None:
    assert mst(np.zeros((1, 1))).tolist() == [-1]
    assert mst(np.zeros((2, 2))).tolist() == [-1, 0]
    assert mst(np.full((3, 3), -np.inf)).tolist() in ([-1, 0, 1], [-1, 2, 0])  # nothing allowed: still a tree
    with pytest.raises(ValueError, match="square"):
        mst(np.zeros((3, 4)))
    for value in (np.nan, np.inf):
        bad = np.zeros((3, 3))
        bad[1, 2] = value
        with pytest.raises(ValueError, match="NaN or \\+inf"):
            mst(bad)
    ignored = np.zeros((3, 3))
    ignored[1, 1] = ignored[2, 0] = np.nan  # the diagonal and column 0 may hold anything
    assert is_tree(mst(ignored)[1:])


@pytest.mark.parametrize("single_root", [True, False])
def test_is_tree_agrees_with_reference_on_all_assignments(single_root: bool) -> None:
    for n in range(1, 6):
        for heads in itertools.product(range(n + 1), repeat=n):
            assert is_tree(heads, single_root=single_root) == _ref_is_tree(heads, single_root), heads


def test_is_tree_hand_cases() -> None:
    assert is_tree([2, 0, 2])  # 1 <- 2 -> 3
    assert is_tree([])  # nothing to repair
    assert is_tree([3, 4, 0, 3])  # crossing arcs 3->1 and 4->2 are fine
    assert not is_tree([0, 3, 2])  # 2 <-> 3 cycle
    assert not is_tree([2, 1])  # cycle, no root
    assert not is_tree([1, 0])  # self-loop
    assert not is_tree([0, 5])  # head out of range
    assert not is_tree([0, -1])
    assert not is_tree([0, 0])  # two ROOT children
    assert is_tree([0, 0], single_root=False)
    assert is_tree([0, 0, 1], single_root=False)


def test_mst_torch_takes_dependent_head_layout() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(7, 7))  # [head, dep]
    s_arc = torch.tensor(scores.T, dtype=torch.float32)  # [dep, head]
    for single_root in (True, False):
        out = mst_torch(s_arc, single_root=single_root)
        expected = mst(scores.astype(np.float32), single_root=single_root)
        assert out.dtype == torch.long and out.tolist() == expected.tolist()


@pytest.mark.parametrize("single_root", [True, False])
def test_mst_on_long_sentences(single_root: bool) -> None:
    rng = np.random.default_rng(0)
    idx = np.arange(151)
    random_scores = rng.normal(size=(151, 151))
    # every word prefers a neighbour: a cycle to contract at almost every step (the worst case, ~n steps)
    local_scores = -np.abs(idx[:, None] - idx[None, :]) + 0.1 * random_scores
    for scores in (random_scores, local_scores):  # (speed: benchmarks/step_profile.py, no timed asserts)
        heads = mst(scores, single_root=single_root)
        assert is_tree(heads[1:], single_root=single_root)
