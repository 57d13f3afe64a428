"""Batched tree checks, batched Eisner and DEP's batched test-time decoding against the per-sentence code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.eisner import eisner, eisner_batch, is_projective_tree
from mtlheads.tasks.mst import are_trees, is_tree


def old_decode(task: DepTask, out: dict, mask: torch.Tensor, *, final: bool) -> list:
    """The replaced ``DepTask.decode`` (reference): ``tree_heads`` on one sentence at a time."""
    s_arc, s_rel = out["arc"].detach(), out["rel"].detach()
    lengths = (mask.sum(1) - 1).tolist()
    heads = s_arc.argmax(-1)
    if final:
        arcs, trees = s_arc.cpu(), heads.cpu()
        for b, n in enumerate(lengths):
            trees[b, 1 : n + 1] = task.tree_heads(arcs[b, : n + 1, : n + 1])
        heads = trees.to(heads.device)
    heads[:, 0] = 0
    index = heads[:, :, None, None].expand(-1, -1, 1, s_rel.shape[-1])
    rel_pred = s_rel.gather(2, index).squeeze(2).argmax(-1)
    heads_list, rels_list = heads.tolist(), rel_pred.tolist()
    return [
        (heads_list[b][1 : n + 1], [task.labels[r] for r in rels_list[b][1 : n + 1]])
        for b, n in enumerate(lengths)
    ]


def _random_heads(rng: np.random.Generator, lengths: list[int], size: int) -> torch.Tensor:
    """Heads with garbage past each end; some rows are real trees, some out of range."""
    heads = rng.integers(-1, size + 1, size=(len(lengths), size))
    for b, n in enumerate(lengths):
        kind = rng.integers(4)
        if kind == 0 and n:  # a random tree: attach each word to an earlier word in a random order
            order = rng.permutation(n) + 1
            heads[b, order[0]] = 0
            for i in range(1, n):
                heads[b, order[i]] = order[rng.integers(i)]
        elif kind == 1:  # in range, anything
            heads[b, 1 : n + 1] = rng.integers(0, n + 1, size=n)
        elif kind == 2 and n:  # a projective chain with one root
            heads[b, 1 : n + 1] = np.arange(n)
    return torch.from_numpy(heads)


@pytest.mark.parametrize("projective", [False, True])
@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_are_trees_equals_the_per_sentence_checks(seed, single_root, projective) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, size=40).tolist()
    size = max(lengths) + 1 + int(rng.integers(3))
    heads = _random_heads(rng, lengths, size)
    check = is_projective_tree if projective else is_tree
    expected = [check(heads[b, 1 : n + 1].tolist(), single_root=single_root) for b, n in enumerate(lengths)]
    got = are_trees(heads, torch.tensor(lengths), single_root=single_root, projective=projective)
    assert got.tolist() == expected
    assert any(expected) and not all(expected)


@pytest.mark.parametrize("single_root", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_eisner_batch_equals_eisner_per_sentence(seed, single_root) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(0, 10, size=12)]
    size = max(lengths) + 1
    if seed % 2:  # small integers: many ties, so the tie-breaking must match too
        scores = rng.integers(-2, 3, size=(12, size, size)).astype(np.float64)
    else:
        scores = rng.normal(size=(12, size, size))
    scores[rng.random(scores.shape) < 0.1] = -np.inf  # forbidden arcs
    past = np.arange(size)[None, :] > np.array(lengths)[:, None]  # (B, N+1)
    scores[past[:, :, None] | past[:, None, :]] = np.nan  # padding: must never be read
    got = eisner_batch(scores, lengths, single_root=single_root)
    for b, n in enumerate(lengths):
        ref = eisner(scores[b, : n + 1, : n + 1], single_root=single_root)
        assert got[b, : n + 1].tolist() == ref.tolist()
        assert (got[b, n + 1 :] == -1).all()


@pytest.mark.parametrize("decoder", ["mst", "eisner"])
@pytest.mark.parametrize("seed", range(4))
def test_dep_decode_equals_the_per_sentence_decode(decoder, seed) -> None:
    task = DepTask(decoder=decoder)
    task.set_labels([f"r{i}" for i in range(6)])
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (16,), generator=g)
    lengths[0] = 11
    mask = torch.arange(12)[None, :] < (lengths + 1)[:, None]
    arc = torch.randn(16, 12, 12, generator=g) * 3
    if seed % 2:  # integer scores: argmax ties inside and across sentences
        arc = arc.round()
    arc = arc.masked_fill(~mask[:, None, :], float("-inf"))  # padded heads, as DepDecoder masks them
    out = {"arc": arc, "rel": torch.randn(16, 12, 12, 6, generator=g)}
    for final in (False, True):
        assert task.decode(out, mask, final=final) == old_decode(task, out, mask, final=final)


def test_dep_final_decode_with_unmasked_padding_slices_like_before() -> None:
    """Scores past a sentence's end are not -inf here: the final decode still only sees its own block."""
    task = DepTask()
    task.set_labels(["a", "b"])
    g = torch.Generator().manual_seed(7)
    mask = torch.arange(8)[None, :] < torch.tensor([[8], [4], [2]])
    out = {"arc": torch.randn(3, 8, 8, generator=g), "rel": torch.randn(3, 8, 8, 2, generator=g)}
    assert task.decode(out, mask, final=True) == old_decode(task, out, mask, final=True)
