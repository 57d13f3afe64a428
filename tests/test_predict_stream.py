"""Streaming in mode=predict: batches in file order, one prediction stream fanned out to several writers
without buffering it, and all-or-nothing files when the stream or a writer fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mtlheads.data.sentence import Sentence
from mtlheads.data.writers import write_conllu, write_ptb
from mtlheads.predict.stream import fan_out, file_order_batches


def test_file_order_batches_keep_the_order_and_the_budget() -> None:
    lengths = [5, 7, 3, 40, 6, 6, 6, 6, 2, 100, 9]
    batches = file_order_batches(lengths, max_tokens=30, max_sentences=3)
    assert [i for b in batches for i in b] == list(range(len(lengths)))  # every sentence once, in order
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 30
    assert [3] in batches and [9] in batches  # over the budget alone: a batch of its own
    assert file_order_batches([], max_tokens=10, max_sentences=2) == []


def test_every_consumer_gets_every_item_in_order() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}
    fan_out(range(50), [lambda it: seen["a"].extend(it), lambda it: seen["b"].extend(x for x in it)])
    assert seen == {"a": list(range(50)), "b": list(range(50))}


def test_the_stream_is_never_held_in_memory() -> None:
    made = 0
    ahead: list[int] = []
    lock = threading.Lock()

    def produce():
        nonlocal made
        for i in range(200):
            with lock:
                made += 1
            yield i

    def slow(items):
        for k, _ in enumerate(items, 1):
            with lock:
                ahead.append(made - k)  # produced but not yet consumed here
            time.sleep(0.001)

    fan_out(produce(), [slow, lambda items: sum(1 for _ in items)], depth=4)
    assert len(ahead) == 200 and max(ahead) <= 4 + 2  # the queue, one item in hand, one being put


def _sentences(n: int) -> list[Sentence]:
    return [Sentence(words=["a", "b"], pos=["DT", "NN"]) for _ in range(n)]


def test_a_failing_stream_leaves_no_file(tmp_path: Path) -> None:
    def stream():
        for k, s in enumerate(_sentences(30)):
            if k == 20:
                raise RuntimeError("model failed")
            yield s, {"pos": ["X", "Y"]}

    conllu, ptb = tmp_path / "p.conllu", tmp_path / "p.ptb"
    with pytest.raises(RuntimeError, match="model failed"):
        fan_out(
            stream(),
            [
                lambda items: write_conllu(conllu, items),
                lambda items: write_ptb(ptb, ((s, "(TOP (X a) (Y b))") for s, _ in items)),
            ],
        )
    assert list(tmp_path.iterdir()) == []  # atomic writers: no partial file, no temp file


def test_a_failing_writer_stops_the_others_and_the_stream(tmp_path: Path) -> None:
    taken = 0

    def stream():
        nonlocal taken
        for k, s in enumerate(_sentences(500)):
            taken += 1
            yield s, {"pos": ["X", "Y"] if k != 10 else ["X\tbad", "Y"]}  # a tag no column can hold

    with pytest.raises(ValueError, match="cannot be written"):
        fan_out(
            stream(),
            [
                lambda items: write_conllu(tmp_path / "p.conllu", items),
                lambda items: write_ptb(tmp_path / "p.ptb", ((s, "(TOP (X a) (Y b))") for s, _ in items)),
            ],
            depth=2,
        )
    assert list(tmp_path.iterdir()) == []
    assert taken < 100  # the model loop stopped soon after the failure
