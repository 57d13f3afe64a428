"""Predictions in file order, a batch at a time, fanned out to several writers without holding them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from mtlheads.model import MultiTaskModel
from mtlheads.predict.inputs import Input
from mtlheads.training.data import encode_inputs


def file_order_batches(lengths: list[int], *, max_tokens: int, max_sentences: int) -> list[list[int]]:
    """Consecutive sentences under the padded token budget (a longer sentence gets a batch of its own), in
    the order of the file, so that the writers can stream."""
    batches: list[list[int]] = []
    longest = 0
    for i, n in enumerate(lengths):
        if (
            batches
            and max(longest, n) * (len(batches[-1]) + 1) <= max_tokens
            and len(batches[-1]) < max_sentences
        ):
            batches[-1].append(i)
            longest = max(longest, n)
        else:
            batches.append([i])
            longest = n
    return batches


def predict_stream(
    model: MultiTaskModel, tokenizer, inp: Input, batch: DictConfig, *, metrics: Mapping, progress: bool
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yields ``(sentence, {task: prediction})`` in file order, a batch at a time; updates ``metrics``."""
    names = list(inp.splits)
    lengths = inp.splits[names[0]].lengths
    batches = file_order_batches(lengths, max_tokens=batch.eval_max_tokens, max_sentences=batch.max_sentences)
    with tqdm(
        total=len(batches), desc=f"predict {'+'.join(names)}", unit="batch", disable=not progress
    ) as bar:
        for idx in batches:
            layers: list[dict[str, Any]] = [{} for _ in idx]
            with torch.inference_mode():
                for name in names:
                    task, sentences = model.tasks[name], [inp.splits[name].sentences[i] for i in idx]
                    inputs = {
                        k: v.to(model.device) for k, v in encode_inputs(task, tokenizer, sentences).items()
                    }
                    out, mask = model(name, inputs)
                    preds = task.decode(out, mask, final=model.final_decode)
                    if name in metrics:
                        metrics[name].update(preds, sentences)
                    for layer, pred in zip(layers, preds, strict=True):
                        layer[name] = pred
            bar.update()
            yield from zip((inp.sentences[i] for i in idx), layers, strict=True)


class _Stopped(Exception):
    """Raised inside a writer's input when another writer or the prediction loop failed."""


_END = object()


def fan_out(items: Iterable, consumers: list[Callable[[Iterable], Any]], depth: int = 4) -> None:
    """Feeds every item of ``items`` to every consumer, each running in its own thread behind a queue of
    ``depth`` items, so one pass of the model feeds several files without holding the stream in memory.

    The first error, of the loop over ``items`` or of a consumer, stops every consumer (raised from its
    input, so an atomic writer leaves no file) and is raised here.
    """
    queues: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in consumers]
    errors: list[BaseException] = []

    def stream(q: queue.Queue) -> Iterator:
        while (item := q.get()) is not _END:
            if isinstance(item, _Stopped):
                raise item
            yield item

    def work(consume: Callable[[Iterable], Any], q: queue.Queue) -> None:
        try:
            consume(stream(q))
        except BaseException as e:  # noqa: B036 -- handed to the main thread, which raises it
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=cq, daemon=True) for cq in zip(consumers, queues, strict=True)
    ]
    for t in threads:
        t.start()

    def send(item: object) -> None:
        for q, t in zip(queues, threads, strict=True):
            while t.is_alive():  # a consumer that failed takes nothing more
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    try:
        for item in items:
            if errors:
                break
            send(item)
    except BaseException:
        send(_Stopped("prediction stopped"))
        for t in threads:
            t.join()
        raise
    send(_Stopped("another output failed") if errors else _END)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
