"""The head gate: one mechanism that scales each attention head's context vector, for every mode.

A gate multiplies head ``h`` of layer ``l`` by ``gate()[l, h]`` *before the attention output
projection* (the Linear mapping ``H·d_h -> D``). That projection's input is exactly the concatenated
per-head contexts ``softmax(QKᵀ/√d_h)V``, so one forward pre-hook per layer works for every encoder
family (BERT, RoBERTa, ELECTRA, XLM-R, DeBERTa-v2, DistilBERT, ALBERT, ModernBERT), with SDPA or eager.

Gate values are computed ONCE per encoder forward (a pre-hook on the model calls ``gate()`` and caches
the ``(L, H)`` tensor), so a stochastic gate samples once per forward and every layer sees that sample.
ALBERT reuses one layer module at every depth: its hook runs ``L`` times per forward and a depth counter,
reset by the model pre-hook, picks row ``l`` of the gate, so ALBERT gets per-depth gates too (this
counter does not survive activation checkpointing of ALBERT, which recomputes layers out of order).

The same hooks gate whole FFN sub-layers (Super Tickets): a gate whose ``ffn()`` gives ``(L,)`` values
scales each layer's FFN output (after its second Linear, before the residual and LayerNorm), so a 0 skips
the FFN and keeps the layer's residual and LayerNorm.

The gate is not registered as a submodule of the model (the encoder's state dict stays unchanged):
whoever owns the gate (the LightningModule) moves it between devices and saves it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

# Attention output projections (module-name suffixes) in transformers 5.
PROJECTION_SUFFIXES = (
    "attention.output.dense",  # BERT, RoBERTa, ELECTRA, XLM-R, DeBERTa-v2, MiniLM
    "attention.out_lin",  # DistilBERT
    "attention.dense",  # ALBERT (one shared module per layer group)
    "attn.Wo",  # ModernBERT
)
# FFN output Linears (module names): BERT-like and DeBERTa-v2, DistilBERT, ALBERT (shared), ModernBERT.
FFN_OUTPUT = re.compile(r"(?:^|\.)(?:layer\.\d+\.output\.dense|ffn\.lin2|ffn_output|mlp\.Wo)$")


def head_shape(model_or_config) -> tuple[int, int]:
    """Number of gated layers and heads per layer, read from the config.

    Args:
        model_or_config: a transformers model (``.config`` is used) or a config.

    Returns:
        ``(L, H)``. For ALBERT ``L = num_hidden_layers · inner_group_num`` (attention calls per forward).
    """
    cfg = getattr(model_or_config, "config", model_or_config)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", None)
    if layers is None or heads is None:
        raise ValueError(f"cannot read the number of layers/heads from {type(cfg).__name__}")
    return int(layers) * int(getattr(cfg, "inner_group_num", 1) or 1), int(heads)


class HeadGate(nn.Module):
    """Base class: ``forward() -> Tensor (L, H)`` gives the current head multipliers.

    The model holds one gate in its gate slot (``MultiTaskModel.heads``) and asks it, besides the
    multipliers, for a loss term (``regularizer``), optimizer groups (``param_groups``), the task of the
    next batch (``select_task``) and what to report (``eval_values``, ``summary``). Subclasses set
    ``is_identity = True`` when the gate is a no-op (the hooks then do nothing), ``learnable = True`` when
    it is trained with the model (its values are then monitored and saved), and may override ``observe``
    to see each layer's context (called only when ``keep_context`` is True).
    """

    is_identity: bool = False
    keep_context: bool = False
    learnable: bool = False
    gates_ffn: bool = False  # True: ffn() gives (L,) FFN multipliers and the FFN outputs get hooks too

    def __init__(self, *, num_layers: int, num_heads: int):
        super().__init__()
        self.num_layers, self.num_heads = int(num_layers), int(num_heads)

    def observe(self, layer: int, context: Tensor, gated: Tensor) -> None:
        """See layer ``layer``'s context ``(..., H, d_h)`` and its gated version (same shape)."""

    def ffn(self) -> Tensor | None:
        """(L,) multipliers of the FFN sub-layers (None: FFNs ungated)."""
        return None

    def observe_ffn(self, layer: int, output: Tensor, gated: Tensor) -> None:
        """See layer ``layer``'s FFN output ``(..., D)`` and its gated version (when ``keep_context``)."""

    def regularizer(self) -> Tensor | None:
        """A term added to every training mini-batch's loss (None: nothing)."""
        return None

    def param_groups(self, optim) -> list[dict]:
        """Optimizer groups for the gate's own trainable tensors (``optim``: the run's ``OptimConfig``)."""
        return []

    def select_task(self, task: str) -> None:
        """Called before each batch of ``task`` (per-task gates switch masks here)."""

    def eval_values(self) -> Tensor:
        """(L, H) multipliers in eval mode, detached: what reports and ``gates.pt`` show."""
        return self().detach()

    def summary(self, threshold: float = 1e-3) -> dict:
        """Open heads (eval value above ``threshold``): count, per layer, and the (layer, head) pairs."""
        values = self.eval_values()
        open_ = values > threshold
        return {
            "open_heads": int(open_.sum()),
            "total_heads": open_.numel(),
            "open_per_layer": open_.sum(dim=1).tolist(),
            "claimed": [[int(layer), int(head)] for layer, head in open_.nonzero().tolist()],
        }

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, num_heads={self.num_heads}"


class OnesGate(HeadGate):
    """Every head open: a no-op whose hooks skip the multiply entirely."""

    is_identity = True

    def forward(self) -> Tensor:
        return torch.ones(self.num_layers, self.num_heads)


class MaskGate(HeadGate):
    """A fixed (L, H) multiplier buffer: 0/1 masks from pruning, tickets, rewinding, or any floats.

    Args:
        mask: (L, H) head multipliers.
        ffn: optional (L,) FFN multipliers (0 skips a layer's FFN).
        fold: when the model slot takes it, remove the masked heads and FFNs from the weights instead of
            multiplying activations (``heads.prune.fold_mask``; 0/1 masks of supported families only).
    """

    def __init__(self, *, mask: Tensor, ffn: Tensor | None = None, fold: bool = False):
        super().__init__(num_layers=mask.shape[0], num_heads=mask.shape[1])
        self.register_buffer("mask", mask.detach().clone().float())
        self.register_buffer("ffn_mask", None if ffn is None else ffn.detach().clone().float())
        self.gates_ffn, self.fold = ffn is not None, fold

    def forward(self) -> Tensor:
        return self.mask

    def ffn(self) -> Tensor | None:
        return self.ffn_mask


@dataclass
class GateHandle:
    """Returned by ``install_head_gate``: ``remove()`` restores the ungated model."""

    gate: HeadGate
    hooks: list = field(default_factory=list)
    values: Tensor | None = None  # (L, H) of the current forward
    ffn_values: Tensor | None = None  # (L,) of the current forward
    depth: int = 0  # shared-module depth counters (ALBERT)
    ffn_depth: int = 0

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks.clear()
        self.values = self.ffn_values = None

    def __enter__(self) -> GateHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def find_projections(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The attention output projections of ``model``, in layer order (shared modules listed once)."""
    found = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(n == s or n.endswith("." + s) for s in PROJECTION_SUFFIXES)
    ]
    if not found:
        raise ValueError(
            f"no attention output projection found in {type(model).__name__}: expected a Linear named "
            f"*.{{{', '.join(PROJECTION_SUFFIXES)}}}; add this architecture's name to PROJECTION_SUFFIXES"
        )

    return _in_layer_order(found)


def _in_layer_order(found: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Sorted by the last integer of each name (``layer.10`` after ``layer.9``) when those are 0..n-1."""

    def last_int(name: str) -> int | None:
        nums = re.findall(r"\.(\d+)\.", "." + name + ".")
        return int(nums[-1]) if nums else None

    idx = [last_int(n) for n, _ in found]
    if None not in idx and sorted(idx) == list(range(len(found))):
        found = [found[i] for i in sorted(range(len(found)), key=idx.__getitem__)]
    return found


def install_head_gate(model: nn.Module, gate: HeadGate) -> GateHandle:
    """Hook ``gate`` into every attention layer of ``model``.

    Args:
        model: a transformers encoder (base model or a model with a head).
        gate: a ``HeadGate`` whose ``forward()`` returns (L, H) with ``(L, H) == head_shape(model)``.

    Returns:
        A ``GateHandle``; ``handle.remove()`` uninstalls every hook. Several gates may be installed at
        once (e.g. a pruning mask and an importance gate): their multipliers compose.
    """
    if getattr(getattr(model, "config", None), "mtlheads_kept_heads", None) is not None:
        # config.num_attention_heads still counts the original heads: the hooks would cut wrong widths
        raise ValueError(f"{type(model).__name__} has physically pruned heads: gate it before pruning")
    rows, heads = head_shape(model)
    if (gate.num_layers, gate.num_heads) != (rows, heads):
        raise ValueError(
            f"gate shape {(gate.num_layers, gate.num_heads)} != {type(model).__name__} heads {(rows, heads)}"
        )
    projections = find_projections(model)
    shared = len(projections) < rows
    if not shared and len(projections) != rows:
        raise ValueError(f"{type(model).__name__}: found {len(projections)} projections for {rows} layers")
    handle = GateHandle(gate=gate)

    def start(module, args):  # once per forward of the whole model
        handle.depth = handle.ffn_depth = 0
        if gate.is_identity:
            handle.values = handle.ffn_values = None
            return
        values, param = gate(), next(model.parameters(), None)
        handle.values = values if param is None else values.to(param.device)  # (L, H)
        handle.ffn_values = gate.ffn() if gate.gates_ffn else None  # (L,)

    def make_hook(fixed_layer: int | None, d_in: int):
        if d_in % heads:
            raise ValueError(f"{type(model).__name__}: projection width {d_in} % {heads} heads != 0")
        d_h = d_in // heads

        def hook(module, args):
            if fixed_layer is None:
                layer, handle.depth = handle.depth % rows, handle.depth + 1
            else:
                layer = fixed_layer
            if gate.is_identity:
                return None
            if handle.values is None:  # encoder called below the hooked top module
                handle.values = gate()
            x = args[0]  # (..., T, H·d_h)
            g = handle.values[layer].to(device=x.device, dtype=x.dtype)  # (H,)
            ctx = x.unflatten(-1, (heads, d_h))  # (..., T, H, d_h)
            gated = ctx * g.unsqueeze(-1)  # one broadcast multiply per layer
            if gate.keep_context:
                gate.observe(layer, ctx, gated)
            return (gated.flatten(-2), *args[1:])  # (..., T, H·d_h)

        return hook

    handle.hooks.append(model.register_forward_pre_hook(start))
    for i, (_, proj) in enumerate(projections):
        hook = make_hook(None if shared else i, proj.in_features)
        handle.hooks.append(proj.register_forward_pre_hook(hook))
    if gate.gates_ffn:
        _hook_ffn_outputs(model, gate, handle, rows)
    return handle


def find_ffn_outputs(model: nn.Module) -> list[nn.Module]:
    """The FFN output Linears of ``model`` in layer order (a shared one listed once), or a ValueError."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and FFN_OUTPUT.search(n)]
    if not found:
        raise ValueError(
            f"{type(model).__name__}: no FFN output Linear found (expected *.layer.<i>.output.dense, "
            "*.ffn.lin2, *.ffn_output or *.mlp.Wo): FFN gates do not support this architecture"
        )
    return [m for _, m in _in_layer_order(found)]


def _hook_ffn_outputs(model: nn.Module, gate: HeadGate, handle: GateHandle, rows: int) -> None:
    """Forward hooks scaling each layer's FFN output by ``gate.ffn()[layer]``."""
    outputs = find_ffn_outputs(model)
    shared = len(outputs) < rows
    if not shared and len(outputs) != rows:
        raise ValueError(f"{type(model).__name__}: found {len(outputs)} FFN outputs for {rows} layers")

    def make_hook(fixed_layer: int | None):
        def hook(module, args, output):
            if fixed_layer is None:
                layer, handle.ffn_depth = handle.ffn_depth % rows, handle.ffn_depth + 1
            else:
                layer = fixed_layer
            if handle.ffn_values is None:  # encoder called below the hooked top module
                handle.ffn_values = gate.ffn()
            g = handle.ffn_values[layer].to(device=output.device, dtype=output.dtype)  # ()
            gated = output * g  # (..., T, D)
            if gate.keep_context:
                gate.observe_ffn(layer, output, gated)
            return gated

        return hook

    for i, module in enumerate(outputs):
        handle.hooks.append(module.register_forward_hook(make_hook(None if shared else i)))
