"""Multi-task data: read each task's splits, tokenize, and serve single-task batches.

Training batches come from :class:`MultiTaskBatchSampler`: each epoch it cuts every task's
sentences into token-budget batches, draws a task schedule from the sampler's probabilities, and
yields ``[(task, index), ...]`` lists. ``training.checkpointing.ResumeState`` calls ``set_epoch`` at each
epoch start (Lightning 2.6 never calls it on a batch sampler), so the shuffles are a pure function of
``(seed, epoch)``: deterministic and resumable.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mtlheads.data.sentence import Sentence
from mtlheads.encoder.word_encoder import tokenize_pairs, tokenize_words
from mtlheads.tasks.base import Task
from mtlheads.training.batching import token_budget_batches
from mtlheads.training.sampler import TemperatureSampler, task_schedule


@dataclass
class TaskSplit:
    """One split of one task: its sentences and their subword lengths (special tokens included)."""

    sentences: list[Sentence]
    lengths: list[int] = field(default_factory=list)


def encode_inputs(task: Task, tokenizer, examples: list) -> dict[str, torch.Tensor]:
    """Encoder inputs of one batch: word lists for token-level tasks, (a, b) pairs for sentence tasks."""
    if getattr(task, "input_kind", "words") == "pair":
        b = [e.text_b for e in examples]
        return tokenize_pairs(tokenizer, [e.text_a for e in examples], b, max_length=task.max_length)
    return tokenize_words(tokenizer, [s.words for s in examples])


def subword_lengths(tokenizer, task: Task, examples: list, chunk: int = 1024) -> list[int]:
    """Subword count of each example as the encoder will see it (special tokens included)."""
    if getattr(task, "input_kind", "words") == "pair":
        return [
            int(n)
            for i in range(0, len(examples), chunk)
            for n in encode_inputs(task, tokenizer, examples[i : i + chunk])["attention_mask"].sum(1)
        ]
    sentences = examples
    lengths: list[int] = []
    for start in range(0, len(sentences), chunk):
        words = [s.words for s in sentences[start : start + chunk]]
        enc = tokenizer(words, is_split_into_words=True, add_special_tokens=True)["input_ids"]
        # A word with no subword still gets one (the encoder maps it to [UNK]).
        lengths += [max(len(ids), len(w) + 2) for ids, w in zip(enc, words, strict=True)]
    return lengths


class MultiTaskBatchSampler(Sampler[list[tuple[str, int]]]):
    """Yields one epoch of single-task batches in a sampled task order.

    Args:
        lengths: per task, the subword length of every training sentence.
        max_tokens: padded-token budget of one mini-batch.
        max_sentences: sentence cap of one mini-batch.
        sampler: gives task probabilities from batch counts (temperature, proportional, uniform).
        seed: base seed; epoch ``e`` uses ``np.random.default_rng([seed, e])``.
        num_replicas: data-parallel ranks. Each draw of the schedule (about ``Σ n_t / num_replicas`` draws
            per epoch) is a group of ``num_replicas`` consecutive batches of one task, so every rank trains
            the same task in the same step. With 1 the batches are those of a plain single-process run.
        rank: this rank: it gets the ``rank``-th batch of each group. None: every batch of every group in
            order (one process emulating ``num_replicas`` ranks with gradient accumulation).

    Resuming mid-epoch: ``state_dict()`` -> ``{"epoch", "start"}``; after ``load_state_dict`` the next
    iteration over epoch ``epoch`` skips its first ``start`` batches (a one-shot skip; later epochs are
    whole). Like ``__len__``, ``start`` counts this rank's batches.
    """

    def __init__(
        self,
        *,
        lengths: Mapping[str, list[int]],
        max_tokens: int,
        max_sentences: int,
        sampler: TemperatureSampler,
        seed: int,
        num_replicas: int = 1,
        rank: int | None = 0,
    ):
        if num_replicas < 1 or (rank is not None and not 0 <= rank < num_replicas):
            raise ValueError(
                f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas}, {rank}"
            )
        self.lengths, self.sampler, self.seed = dict(lengths), sampler, seed
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.start = 0  # batches of the current epoch already consumed before a resume

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self, consumed: int = 0) -> dict[str, int]:
        """Position to resume from: the epoch and how many of its batches were ``consumed`` (trained on)."""
        return {"epoch": self.epoch, "start": consumed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.start = int(state["epoch"]), int(state["start"])

    def _task_batches(self, rng: np.random.Generator) -> dict[str, list[list[int]]]:
        return {
            t: token_budget_batches(
                n, max_tokens=self.max_tokens, max_sentences=self.max_sentences, shuffle=True, rng=rng
            )
            for t, n in self.lengths.items()
        }

    def __len__(self) -> int:
        total = sum(len(b) for b in self._task_batches(np.random.default_rng(0)).values())
        groups = -(-total // self.num_replicas)
        return groups * self.num_replicas if self.rank is None else groups

    def __iter__(self) -> Iterator[list[tuple[str, int]]]:
        skip, self.start = self.start, 0
        mine = (
            batch
            for group in self.epoch_groups()
            for r, batch in enumerate(group)
            if self.rank is None or r == self.rank
        )
        yield from itertools.islice(mine, skip, None)

    def epoch_groups(self) -> Iterator[list[list[tuple[str, int]]]]:
        """The current epoch in groups of ``num_replicas`` same-task batches (one step of all ranks)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._task_batches(rng)
        counts = {t: len(b) for t, b in batches.items()}
        schedule = task_schedule(counts, self.sampler.probabilities(counts), rng)
        # Σ n_t draws are made whatever num_replicas is (the rng stream stays the same); ⌈Σ n_t / R⌉ are used.
        schedule = schedule[: -(-len(schedule) // self.num_replicas)]
        cursor = dict.fromkeys(batches, 0)
        for task in schedule:
            group = []
            for _ in range(self.num_replicas):
                if cursor[task] == len(batches[task]):  # cycle a small task: reshuffle and start over
                    order = rng.permutation(len(batches[task]))
                    batches[task] = [batches[task][j] for j in order]
                    cursor[task] = 0
                group.append([(task, i) for i in batches[task][cursor[task]]])
                cursor[task] += 1
            yield group


class _TaskDataset(Dataset):
    def __init__(self, splits: Mapping[str, TaskSplit]):
        self.splits = splits

    def __getitem__(self, key: tuple[str, int]) -> tuple[str, Sentence]:
        task, i = key
        return task, self.splits[task].sentences[i]

    def __len__(self) -> int:
        return sum(len(s.sentences) for s in self.splits.values())


class Collate:
    """Turns ``[(task, sentence), ...]`` into ``{"task", "inputs", "targets", "sentences"}``."""

    def __init__(self, *, tokenizer, tasks: Mapping[str, Task]):
        self.tokenizer, self.tasks = tokenizer, tasks

    def __call__(self, items: list[tuple[str, Sentence]]) -> dict:
        names = {t for t, _ in items}
        if len(names) != 1:
            raise RuntimeError(f"a mini-batch must hold one task, got {sorted(names)}")
        task = names.pop()
        sentences = [s for _, s in items]
        return {
            "task": task,
            "inputs": encode_inputs(self.tasks[task], self.tokenizer, sentences),
            "targets": self.tasks[task].targets(sentences),
            "sentences": sentences,
        }


def train_loader(
    *, splits: Mapping[str, TaskSplit], tasks: Mapping[str, Task], tokenizer, batch_sampler: Sampler
) -> DataLoader:
    return DataLoader(
        _TaskDataset(splits),
        batch_sampler=batch_sampler,
        collate_fn=Collate(tokenizer=tokenizer, tasks=tasks),
        # Its own generator: creating an iterator then draws no number from the global torch RNG, so a
        # resumed run's dropout stream matches an uninterrupted one.
        generator=torch.Generator().manual_seed(0),
    )


def eval_loader(
    *, task: str, split: TaskSplit, tasks: Mapping[str, Task], tokenizer, max_tokens: int, max_sentences: int
) -> DataLoader:
    """Sequential (length-sorted) batches of one task's split."""
    batches = token_budget_batches(split.lengths, max_tokens=max_tokens, max_sentences=max_sentences)
    return DataLoader(
        _TaskDataset({task: split}),
        batch_sampler=[[(task, i) for i in b] for b in batches],
        collate_fn=Collate(tokenizer=tokenizer, tasks=tasks),
    )


def eval_loaders(
    splits: Mapping[str, TaskSplit], *, tasks: Mapping[str, Task], tokenizer, batch
) -> dict[str, DataLoader]:
    """One :func:`eval_loader` per task, sized by the config's ``batch`` (eval_max_tokens, max_sentences)."""
    return {
        name: eval_loader(
            task=name,
            split=split,
            tasks=tasks,
            tokenizer=tokenizer,
            max_tokens=batch.eval_max_tokens,
            max_sentences=batch.max_sentences,
        )
        for name, split in splits.items()
    }
