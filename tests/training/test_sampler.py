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
