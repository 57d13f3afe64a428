"""Head masks as JSON files, readable by every mode (``heads=mask heads.file=<file>``).

A file holds the OPEN heads, 0-based, every layer listed (an empty list closes the whole layer)::

    {"0": [0, 1, 5], "1": [], "2": [0, 1, 2, 3], ...}                 # one mask
    {"heads": {"0": [...], ...}, "ffn": [0, 2, 5]}                      # + the open FFN sub-layers
    {"rte": {"0": [...], ...}, "mrpc": {"heads": {...}, "ffn": [...]}}  # one mask per task

A head or layer out of range, a layer missing, or anything else malformed is a ValueError that names the
file. In memory a head mask is an (L, H) float tensor of 0/1, an FFN mask an (L,) one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mtlheads.heads.gate import HeadGate, MaskGate
from mtlheads.utils.io import atomic_write_json


@dataclass
class Mask:
    """One mask: ``heads`` (L, H) 0/1, and ``ffn`` (L,) 0/1 or None when the file gives no FFN mask."""

    heads: Tensor
    ffn: Tensor | None = None


def _is_layer_map(node: object) -> bool:
    return isinstance(node, Mapping) and bool(node) and all(str(k).lstrip("-").isdigit() for k in node)


def _parse_heads(node: Mapping, shape: tuple[int, int], where: str) -> Tensor:
    layers, heads = shape
    keys = {int(k) for k in node}
    if keys != set(range(layers)):
        bad = sorted(keys - set(range(layers)))
        missing = sorted(set(range(layers)) - keys)
        raise ValueError(
            f"{where}: layers must be 0..{layers - 1}, each listed once"
            + (f"; out of range: {bad}" if bad else "")
            + (f"; missing: {missing}" if missing else "")
        )
    mask = torch.zeros(layers, heads)
    for key, open_heads in node.items():
        if not isinstance(open_heads, list) or not all(isinstance(h, int) for h in open_heads):
            raise ValueError(f"{where}: layer {key} must list open heads as integers, got {open_heads!r}")
        bad = [h for h in open_heads if not 0 <= h < heads]
        if bad:
            raise ValueError(f"{where}: layer {key} has heads {bad} out of range 0..{heads - 1}")
        mask[int(key), open_heads] = 1.0
    return mask


def _parse_mask(node: object, shape: tuple[int, int], where: str) -> Mask:
    if _is_layer_map(node):
        return Mask(_parse_heads(node, shape, where))
    if isinstance(node, Mapping) and "heads" in node and set(node) <= {"heads", "ffn"}:
        heads = _parse_heads(node["heads"], shape, f"{where}: 'heads'")
        ffn = None
        if node.get("ffn") is not None:
            layers = node["ffn"]
            if not isinstance(layers, list) or any(
                not isinstance(x, int) or not 0 <= x < shape[0] for x in layers
            ):
                raise ValueError(
                    f"{where}: 'ffn' must list open FFN layers in 0..{shape[0] - 1}, got {layers!r}"
                )
            ffn = torch.zeros(shape[0])
            ffn[layers] = 1.0
        return Mask(heads, ffn)
    raise ValueError(f"{where}: expected {{layer: [open heads]}} or {{'heads': ..., 'ffn': [...]}}")


def read_mask_file(path: str | os.PathLike, *, shape: tuple[int, int]) -> Mask | dict[str, Mask]:
    """One :class:`Mask`, or ``{task: Mask}`` for a per-task file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config key 'heads.file': no mask file at {str(path)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON mask file: {e}") from None
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"{path}: a mask file is a non-empty JSON object")
    if _is_layer_map(data) or "heads" in data:
        return _parse_mask(data, shape, str(path))
    return {str(task): _parse_mask(node, shape, f"{path}: task {task!r}") for task, node in data.items()}


def mask_to_json(mask: Mask) -> dict:
    """The JSON form of one mask (the inverse of what :func:`read_mask_file` parses)."""
    heads = {
        str(layer): [int(h) for h in row.nonzero().flatten().tolist()] for layer, row in enumerate(mask.heads)
    }
    if mask.ffn is None:
        return heads
    return {"heads": heads, "ffn": [int(x) for x in mask.ffn.nonzero().flatten().tolist()]}


def write_mask_file(path: str | os.PathLike, mask: Mask | Mapping[str, Mask]) -> Path:
    """Writes one mask or ``{task: Mask}`` atomically."""
    data = mask_to_json(mask) if isinstance(mask, Mask) else {t: mask_to_json(m) for t, m in mask.items()}
    return atomic_write_json(path, data)


class TaskMaskGate(HeadGate):
    """A fixed head (and FFN) mask per task: batches of task t run under t's masks (Super Tickets' sharing).

    Args:
        masks: ``{task: (L, H) multipliers}``; every task the model trains must have one.
        ffn: optional ``{task: (L,) FFN multipliers}`` for the same tasks.
    """

    def __init__(self, *, masks: Mapping[str, Tensor], ffn: Mapping[str, Tensor] | None = None):
        shapes = {tuple(m.shape) for m in masks.values()}
        if len(shapes) != 1:
            raise ValueError(f"per-task masks must share one (L, H) shape, got {sorted(shapes)}")
        ((layers, heads),) = shapes
        super().__init__(num_layers=layers, num_heads=heads)
        self.tasks = list(masks)
        self.register_buffer("masks", torch.stack([m.detach().float() for m in masks.values()]))
        ffn_masks = None if ffn is None else torch.stack([ffn[t].detach().float() for t in self.tasks])
        self.register_buffer("ffn_masks", ffn_masks)  # (T, L) or None
        self.gates_ffn = ffn is not None
        self.current = 0

    def select_task(self, task: str) -> None:
        if task not in self.tasks:
            raise KeyError(f"no head mask for task {task!r} (masks for {self.tasks})")
        self.current = self.tasks.index(task)

    def forward(self) -> Tensor:
        return self.masks[self.current]

    def ffn(self) -> Tensor | None:
        return None if self.ffn_masks is None else self.ffn_masks[self.current]


def mask_gate(
    *, num_layers: int, num_heads: int, tasks: Sequence[str], file: str, fold: bool = True
) -> HeadGate:
    """``conf/heads/mask.yaml`` -> a :class:`MaskGate`, or a :class:`TaskMaskGate` for a per-task file.

    ``fold``: a single mask removes its heads/FFNs from the weights where the family allows it.
    """
    masks = read_mask_file(file, shape=(num_layers, num_heads))
    if isinstance(masks, Mask):
        return MaskGate(mask=masks.heads, ffn=masks.ffn, fold=fold)
    return task_mask_gate(masks, tasks, where=file)


def task_mask_gate(masks: Mapping[str, Mask], tasks: Sequence[str], *, where: str) -> TaskMaskGate:
    """Per-task masks for ``tasks`` (FFN masks too when every task has one); ``where`` names the source."""
    missing = [t for t in tasks if t not in masks]
    if missing:
        raise ValueError(f"{where}: no mask for task(s) {missing} (it has {sorted(masks)})")
    with_ffn = [t for t in tasks if masks[t].ffn is not None]
    if with_ffn and len(with_ffn) != len(tasks):
        raise ValueError(f"{where}: FFN masks for {with_ffn} only; give every task one or none")
    ffn = {t: masks[t].ffn for t in tasks} if with_ffn else None
    return TaskMaskGate(masks={t: masks[t].heads for t in tasks}, ffn=ffn)
