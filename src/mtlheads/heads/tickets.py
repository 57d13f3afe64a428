"""Structured lottery tickets (Super Tickets, Liang et al. 2021, B.4-B.6, B.9): masks from importance.

* :func:`winning_masks`: nested masks at sparsity levels ``p`` (heads pruned = ``int(L·H·p)``), lowest
  importance first by a global ranking over all heads, the top head of every layer protected (so at most
  ``L·H - L`` heads go); FFN sub-layers paired as the paper pairs them (``⌊p·L·5/6⌋``, i.e. 10p of 12
  layers for BERT-base), least important first.
* :func:`losing_masks`: the same with the ranking reversed (the most important go first).
* :func:`random_masks`: for each winning level, the same number of heads per layer and the same number
  of FFNs, positions drawn uniformly without replacement (the released code drew with replacement).
* :func:`parameter_usage`: the fraction of encoder parameters a mask keeps, per task and for the union.
* :func:`super_tickets`: the super tickets of several ``mode=tickets`` runs, for ticket-sharing MTL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mtlheads.heads.masks import Mask, TaskMaskGate, read_mask_file

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def ffn_count(level: float, layers: int) -> int:
    """FFN sub-layers pruned at head sparsity ``level`` (the paper's pairing: 10p of 12 layers)."""
    return int(np.floor(level * layers * 5 / 6 + 1e-9))


def _nested_heads(scores: Tensor, levels: Sequence[float]) -> list[Tensor]:
    layers, heads = scores.shape
    protected = torch.zeros_like(scores, dtype=torch.bool)
    protected[torch.arange(layers), scores.argmax(dim=1)] = True  # each layer keeps its best head
    flat = scores.flatten().clone()
    flat[protected.flatten()] = float("inf")
    order = torch.argsort(flat, stable=True)  # ascending: least important first, protected last
    out = []
    for level in levels:
        n = min(int(layers * heads * level), layers * heads - layers)
        mask = torch.ones(layers * heads)
        mask[order[:n]] = 0.0
        out.append(mask.view(layers, heads))
    return out


def _nested_ffn(scores: Tensor, levels: Sequence[float]) -> list[Tensor]:
    order = torch.argsort(scores, stable=True)
    out = []
    for level in levels:
        mask = torch.ones_like(scores)
        mask[order[: ffn_count(level, len(scores))]] = 0.0
        out.append(mask)
    return out


def winning_masks(
    heads: Tensor, ffn: Tensor | None = None, levels: Sequence[float] = LEVELS
) -> dict[float, Mask]:
    """Nested winning tickets ``{level: Mask}`` from importance ``heads`` (L, H) and ``ffn`` (L,)."""
    h = _nested_heads(heads.float(), levels)
    f = _nested_ffn(ffn.float(), levels) if ffn is not None else [None] * len(levels)
    return {lv: Mask(hm, fm) for lv, hm, fm in zip(levels, h, f, strict=True)}


def losing_masks(
    heads: Tensor, ffn: Tensor | None = None, levels: Sequence[float] = LEVELS
) -> dict[float, Mask]:
    """Losing tickets: the most important structures pruned first (each layer keeps its least important)."""
    return winning_masks(-heads.float(), None if ffn is None else -ffn.float(), levels)


def random_masks(winning: Mapping[float, Mask], *, seed: int) -> dict[float, Mask]:
    """Random tickets with each winning level's per-layer head counts and FFN count (no replacement)."""
    rng = np.random.default_rng(seed)
    out = {}
    for level, mask in winning.items():
        heads = torch.zeros_like(mask.heads)
        for layer, kept in enumerate(mask.heads.sum(dim=1).long().tolist()):
            heads[layer, rng.choice(heads.shape[1], size=kept, replace=False)] = 1.0
        ffn = None
        if mask.ffn is not None:
            ffn = torch.zeros_like(mask.ffn)
            ffn[rng.choice(len(ffn), size=int(mask.ffn.sum()), replace=False)] = 1.0
        out[level] = Mask(heads, ffn)
    return out


def structure_sizes(config) -> tuple[int, int]:
    """Parameters of one head (its Q/K/V rows with biases, its output-projection columns) and of one FFN
    sub-layer (both Linears with biases) of a BERT-like ``config``."""
    d, d_ff = config.hidden_size, config.intermediate_size
    d_h = getattr(config, "attention_head_size", None) or d // config.num_attention_heads
    return 3 * (d * d_h + d_h) + d_h * d, d * d_ff + d_ff + d_ff * d + d


def parameter_usage(masks: Mapping[str, Mask], *, head_params: int, ffn_params: int, total: int) -> dict:
    """Fraction of ``total`` encoder parameters each task's mask keeps, and the union of all tasks'."""
    all_heads = torch.stack([m.heads for m in masks.values()])
    all_ffn = [m.ffn for m in masks.values()]

    def kept(heads: Tensor, ffn: Tensor | None) -> float:
        layers, n_heads = heads.shape
        pruned = (layers * n_heads - int(heads.sum())) * head_params
        pruned += 0 if ffn is None else (len(ffn) - int(ffn.sum())) * ffn_params
        return (total - pruned) / total

    out = {task: kept(m.heads, m.ffn) for task, m in masks.items()}
    union_ffn = None if any(f is None for f in all_ffn) else torch.stack(all_ffn).amax(dim=0)
    out["union"] = kept(all_heads.amax(dim=0), union_ffn)
    return out


def super_tickets(folder: str | Path, *, shape: tuple[int, int]) -> dict[str, Mask]:
    """``{task: its super ticket}`` from the ``mode=tickets`` run dirs below ``folder`` (ticket sharing).

    Each run dir holds ``tickets.json`` (naming its task) and ``super_ticket.json``; a task found twice
    is an error naming both dirs.
    """
    found: dict[str, Path] = {}
    for summary in sorted(Path(folder).rglob("tickets.json")):
        task = json.loads(summary.read_text(encoding="utf-8")).get("task")
        mask = summary.parent / "super_ticket.json"
        if task is None or not mask.is_file():
            continue
        if task in found:
            raise ValueError(
                f"config key 'tickets': two super tickets for {task!r}: {found[task]} and {mask}"
            )
        found[task] = mask
    if not found:
        raise FileNotFoundError(f"config key 'tickets': no mode=tickets run (tickets.json) below {folder}")
    return {task: read_mask_file(path, shape=shape) for task, path in found.items()}


def shared_usage(gate: TaskMaskGate, encoder: nn.Module) -> dict[str, float]:
    """:func:`parameter_usage` of a ticket-sharing gate on ``encoder`` (a BERT-like transformers model)."""
    masks = {
        task: Mask(gate.masks[i], None if gate.ffn_masks is None else gate.ffn_masks[i])
        for i, task in enumerate(gate.tasks)
    }
    head_params, ffn_params = structure_sizes(encoder.config)
    total = sum(p.numel() for p in encoder.parameters())
    return parameter_usage(masks, head_params=head_params, ffn_params=ffn_params, total=total)
