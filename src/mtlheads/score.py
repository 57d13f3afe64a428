"""The scoring step: head (and FFN) importance of a trained model on one task's data, in one pass.

Like the fit step it writes nothing; ``mode=importance``, ``mode=tickets`` and ``mode=gradts`` call it.
Kinds: ``ticket`` and ``michel`` (mask gradients through the head gate, ``heads/importance.py``) and
``gradts`` (K/V weight gradients per instance, ``heads/gradts.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mtlheads.heads.gate import head_shape
from mtlheads.heads.gradts import gradts_importance
from mtlheads.heads.importance import score_importance
from mtlheads.model import MultiTaskModel
from mtlheads.training.data import TaskSplit, eval_loader

KINDS = ("ticket", "michel", "gradts")


@dataclass
class TaskScores:
    """Importance of one task. ``heads`` (L, H) and ``ffn`` (L,) normalised as the kind prescribes (FFN:
    None for gradts), ``raw_heads`` before; ``instances`` (N, L, H) per scored sentence in file order
    (gradts only); ``examples`` scored."""

    kind: str
    heads: Tensor
    ffn: Tensor | None
    raw_heads: Tensor
    instances: Tensor | None
    examples: int

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("kind", "heads", "ffn", "raw_heads", "instances", "examples")}


def score_task(
    model: MultiTaskModel,
    task: str,
    split: TaskSplit,
    tokenizer,
    *,
    max_tokens: int,
    max_sentences: int,
    kind: str = "ticket",
    ffn: bool = True,
    cumulative: bool = False,
    variant: str = "columns",
    dropout: bool = True,
    limit: int | None = None,
) -> TaskScores:
    """Scores every head of ``model`` on ``task``'s ``split`` (its first ``limit`` sentences if given).

    Args:
        model: a trained model (it is left in eval mode, weights unchanged).
        task: the task whose loss is differentiated.
        split: the data, e.g. the training split.
        tokenizer: the encoder's tokenizer.
        max_tokens: token budget of a scoring batch.
        max_sentences: sentence cap of a scoring batch.
        kind: ``"ticket"``, ``"michel"`` or ``"gradts"``.
        ffn: also score FFN sub-layers (ticket, michel).
        cumulative: Super Tickets' running-sum quirk (ticket).
        variant: GradTS block, ``"columns"`` (faithful) or ``"rows"`` (per output head).
        dropout: GradTS scores with dropout on (faithful) or off.
        limit: score only the first ``limit`` sentences.
    """
    if kind not in KINDS:
        raise ValueError(f"config key 'importance.kind': {kind!r} is not one of {KINDS}")
    if limit is not None:
        split = TaskSplit(sentences=split.sentences[:limit], lengths=split.lengths[:limit])
    loader = eval_loader(
        task=task,
        split=split,
        tasks=model.tasks,
        tokenizer=tokenizer,
        max_tokens=max_tokens,
        max_sentences=max_sentences,
    )
    model.final_decode = False
    encoder = model.encoder.model
    model.eval()  # decoders and the word encoder: no dropout; the scorers set the transformer's own mode
    if kind == "gradts":
        order = [i for b in loader.batch_sampler for _, i in b]  # length-sorted batches -> file order
        result = gradts_importance(
            encoder,
            model.example_losses,
            loader,
            num_heads=head_shape(encoder)[1],
            variant=variant,
            dropout=dropout,
        )
        instances = torch.empty_like(result.instances)
        instances[torch.tensor(order, dtype=torch.long)] = result.instances
        model.eval()
        return TaskScores(kind, result.task, None, result.raw_task, instances, len(order))
    imp = score_importance(
        encoder,
        lambda batch: (model.task_loss(batch), len(batch["sentences"])),
        loader,
        kind=kind,
        ffn=ffn,
        cumulative=cumulative,
    )
    model.eval()
    return TaskScores(kind, imp.heads, imp.ffn, imp.raw_heads, None, imp.examples)
