import numpy as np
import pytest

from mtlheads.training.batching import token_budget_batches


def test_every_index_once_and_budget_respected():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 80, size=500).tolist()
    batches = token_budget_batches(lengths, max_tokens=400, max_sentences=16, shuffle=True, rng=rng)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        assert len(b) <= 16
        assert max(lengths[i] for i in b) * len(b) <= 400


def test_batches_are_length_buckets():
    lengths = [5, 50, 6, 49, 7, 48]
    batches = token_budget_batches(lengths, max_tokens=150, max_sentences=3)
    assert batches == [[0, 2, 4], [5, 3, 1]]


def test_oversized_sentence_gets_its_own_batch():
    batches = token_budget_batches([10, 1000, 10], max_tokens=100, max_sentences=8)
    assert [1] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


def test_shuffle_is_a_function_of_the_generator():
    lengths = list(range(1, 200))
    a = token_budget_batches(
        lengths, max_tokens=100, max_sentences=8, shuffle=True, rng=np.random.default_rng(3)
    )
    b = token_budget_batches(
        lengths, max_tokens=100, max_sentences=8, shuffle=True, rng=np.random.default_rng(3)
    )
    c = token_budget_batches(
        lengths, max_tokens=100, max_sentences=8, shuffle=True, rng=np.random.default_rng(4)
    )
    assert a == b and a != c


def test_bad_budget_is_an_error():
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches([1], max_tokens=0, max_sentences=1)
