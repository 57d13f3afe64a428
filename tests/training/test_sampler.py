import collections

import numpy as np
import pytest

from mtlheads.training.data import MultiTaskBatchSampler
from mtlheads.training.sampler import ProportionalSampler, TemperatureSampler, UniformSampler, task_schedule


def test_temperature_probabilities_by_hand():
    p = TemperatureSampler(temperature=0.8).probabilities({"a": 100, "b": 10})
    assert p["a"] == pytest.approx(100**0.8 / (100**0.8 + 10**0.8))
    assert ProportionalSampler().probabilities({"a": 30, "b": 10}) == pytest.approx({"a": 0.75, "b": 0.25})
    assert UniformSampler().probabilities({"a": 30, "b": 10, "c": 1}) == pytest.approx(
        dict.fromkeys("abc", 1 / 3)
    )


def test_schedule_length_and_frequencies():
    counts = {"a": 3000, "b": 1000}
    p = TemperatureSampler(temperature=0.5).probabilities(counts)
    schedule = task_schedule(counts, p, np.random.default_rng(0))
    assert len(schedule) == 4000
    freq = collections.Counter(schedule)["a"] / 4000
    assert freq == pytest.approx(p["a"], abs=0.03)


def _sampler(seed=1):
    return MultiTaskBatchSampler(
        lengths={"big": [10] * 400, "small": [10] * 40},
        max_tokens=100,
        max_sentences=10,
        sampler=UniformSampler(),
        seed=seed,
    )


def test_batch_sampler_single_task_batches_cycle_small_task_and_are_deterministic():
    s = _sampler()
    s.set_epoch(0)
    epoch0 = list(s)
    assert len(epoch0) == len(s) == 44  # 40 + 4 batches of 10
    for batch in epoch0:
        assert len({t for t, _ in batch}) == 1
    small = [b for b in epoch0 if b[0][0] == "small"]
    assert len(small) > 4  # uniform sampling up-samples the small task: its 4 batches are cycled
    assert epoch0 == list(s)  # same epoch, same batches
    s.set_epoch(1)
    assert list(s) != epoch0
    big_indices = sorted(i for b in epoch0 if b[0][0] == "big" for _, i in b)
    assert len(set(big_indices)) == len(big_indices)  # down-sampled: no big batch repeats


def test_batch_sampler_resumes_mid_epoch_from_its_state_then_serves_whole_epochs():
    s = _sampler()
    s.set_epoch(3)
    epoch3 = list(s)
    state = s.state_dict(consumed=17)
    assert state == {"epoch": 3, "start": 17}

    resumed = _sampler()
    resumed.load_state_dict(state)
    assert list(resumed) == epoch3[17:]  # the rest of the interrupted epoch, nothing twice
    assert list(resumed) == epoch3  # the skip is one-shot
    resumed.set_epoch(4)
    s.set_epoch(4)
    assert list(resumed) == list(s)


def _ranks(num_replicas=2, seed=1, epoch=0):
    ranks = []
    for rank in [*range(num_replicas), None]:
        s = MultiTaskBatchSampler(
            lengths={"big": [10] * 400, "small": [10] * 40},
            max_tokens=100,
            max_sentences=10,
            sampler=UniformSampler(),
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        s.set_epoch(epoch)
        ranks.append(s)
    return ranks  # rank 0, ..., rank R-1, and the all-ranks emulation (rank=None)


def test_batch_sampler_shards_same_task_groups_across_ranks():
    r0, r1, every = _ranks()
    groups, b0, b1 = list(r0.epoch_groups()), list(r0), list(r1)
    assert len(groups) == len(b0) == len(b1) == len(r0) == len(r1) == 22  # ⌈44 batches / 2 ranks⌉
    assert [g[0] for g in groups] == b0 and [
        g[1] for g in groups
    ] == b1  # rank r takes the r-th of each group
    assert list(every) == [b for g in groups for b in g] and len(every) == 44  # union: the grouped sequence
    for x, y in zip(b0, b1, strict=True):
        assert len({t for t, _ in x + y}) == 1  # one task per step, the same on both ranks
        assert not {i for _, i in x} & {i for _, i in y}  # never the same batch in one step
    big = [i for b in b0 + b1 if b[0][0] == "big" for _, i in b]
    assert len(big) == len(set(big)) > 0  # the down-sampled task: no batch is seen twice, by any rank
    assert list(r1.epoch_groups()) == groups  # every rank computes the same groups


def test_batch_sampler_with_one_replica_is_unchanged():
    one, every = _ranks(num_replicas=1)
    s = _sampler()
    s.set_epoch(0)
    assert list(one) == list(every) == list(s) and len(one) == len(s) == 44


def test_batch_sampler_resumes_each_rank_from_its_own_count():
    r0, r1, _ = _ranks(epoch=2)
    b0, b1 = list(r0), list(r1)
    r0.load_state_dict(r0.state_dict(consumed=5))
    r1.load_state_dict(r1.state_dict(consumed=5))
    assert list(r0) == b0[5:] and list(r1) == b1[5:]
    assert list(r0) == b0  # the skip is one-shot


def test_batch_sampler_rejects_a_rank_out_of_range():
    with pytest.raises(ValueError, match="rank"):
        MultiTaskBatchSampler(
            lengths={"a": [1]},
            max_tokens=10,
            max_sentences=1,
            sampler=UniformSampler(),
            seed=0,
            num_replicas=2,
            rank=2,
        )
