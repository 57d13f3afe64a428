"""Head and FFN importance through the gate hooks: Super Tickets' and Michel et al.'s mask-gradient scores.

An :class:`ImportanceGate` is a gate of ones (heads (L, H), optionally FFN sub-layers (L,)) whose leaf
tensors receive ∂L/∂ξ in backward; with ``keep_context`` it also keeps each layer's head contexts ``c``
(B, T, H, d_h) and FFN outputs ``y`` (B, T, D) with their gradients ``g``. From these:

* ``ticket`` (Super Tickets, Liang et al. 2021, B.3): ``Σ_b Σ_t |⟨g_{b,h,t}, c_{b,h,t}⟩|`` per head and
  ``Σ_b Σ_t |⟨∂L/∂y_{b,t}, y_{b,t}⟩|`` per FFN, summed over the batches; ``cumulative=True`` reproduces
  the released code's never-zeroed mask gradient (batch ``s`` of ``T`` weighted by ``T - s + 1``).
* ``michel`` (Michel et al. 2019): ``|∂L/∂ξ_h|`` of each batch (the signed sum over examples and
  tokens), summed over the batches.

Both score in eval mode (dropout off), one pass, batched; head scores are L2-normalised per layer and
FFN scores by their global L2 norm (neither changes a ranking within a layer). GradTS' weight-gradient
score is in ``heads/gradts.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlheads.heads.gate import HeadGate, head_shape, install_head_gate

KINDS = ("ticket", "michel")


class ImportanceGate(HeadGate):
    """Leaf tensors of ones; after ``backward`` their ``.grad`` is ∂L/∂ξ (Michel et al., 2019).

    ``values`` (and ``ffn_values``) are ``nn.Parameter`` so they stay leaves across ``.to()``/``.double()``;
    keep them out of optimizers. With ``keep_context=True`` each forward stores per layer the context and
    its gated version (``retain_grad``), from which the per-example and per-token scores are computed.

    Args:
        num_layers: L.
        num_heads: H.
        keep_context: keep contexts (and FFN outputs) for per-example / per-token scores.
        ffn: also gate the FFN sub-layers (``ffn_values``, (L,)).
    """

    def __init__(self, *, num_layers: int, num_heads: int, keep_context: bool = False, ffn: bool = False):
        super().__init__(num_layers=num_layers, num_heads=num_heads)
        self.values = nn.Parameter(torch.ones(num_layers, num_heads))
        self.ffn_values = nn.Parameter(torch.ones(num_layers)) if ffn else None
        self.keep_context, self.gates_ffn = keep_context, ffn
        self.clear()

    def forward(self) -> Tensor:
        if self.keep_context:  # called once per encoder forward: start a fresh record
            self._reset_records()
        return self.values

    def ffn(self) -> Tensor | None:
        return self.ffn_values

    def observe(self, layer: int, context: Tensor, gated: Tensor) -> None:
        if gated.requires_grad:
            gated.retain_grad()
        self.contexts[layer], self.gated[layer] = context, gated

    def observe_ffn(self, layer: int, output: Tensor, gated: Tensor) -> None:
        if gated.requires_grad:
            gated.retain_grad()
        self.ffn_outputs[layer], self.ffn_gated[layer] = output, gated

    def _products(self, heads: bool) -> list[Tensor]:
        """Per layer ``⟨c, ∂L/∂(ξc)⟩`` per token: (B, T, H) for heads, (B, T) for FFNs."""
        kept = (self.contexts, self.gated) if heads else (self.ffn_outputs, self.ffn_gated)
        pairs = zip(*kept, strict=True)
        out = []
        for layer, (c, g) in enumerate(pairs):
            if c is None or g is None or g.grad is None:
                raise RuntimeError(f"no context gradient for layer {layer}: forward+backward first")
            out.append((c.detach() * g.grad).sum(dim=-1))
        return out

    def per_example_grad(self) -> Tensor:
        """Per-example ∂L/∂ξ, ``Σ_t ⟨c, ∂L/∂(ξc)⟩``: (L, B, H); summed over B it is ``values.grad``."""
        return torch.stack([p.sum(dim=1) for p in self._products(heads=True)])

    def per_token_abs(self) -> Tensor:
        """Super Tickets' head score of this backward, per example: ``Σ_t |⟨g, c⟩|``, (L, B, H)."""
        return torch.stack([p.abs().sum(dim=1) for p in self._products(heads=True)])

    def ffn_per_token_abs(self) -> Tensor:
        """The same for FFN sub-layers: ``Σ_t |⟨∂L/∂y, y⟩|``, (L, B)."""
        return torch.stack([p.abs().sum(dim=1) for p in self._products(heads=False)])

    def _reset_records(self) -> None:
        self.contexts: list[Tensor | None] = [None] * self.num_layers
        self.gated: list[Tensor | None] = [None] * self.num_layers
        self.ffn_outputs: list[Tensor | None] = [None] * self.num_layers
        self.ffn_gated: list[Tensor | None] = [None] * self.num_layers

    def clear(self) -> None:
        """Drop the stored contexts (they hold activations) and the accumulated gradients."""
        self._reset_records()
        self.values.grad = None
        if self.ffn_values is not None:
            self.ffn_values.grad = None


def importance_gate(
    *, num_layers: int, num_heads: int, tasks, keep_context: bool = False, ffn: bool = False
) -> ImportanceGate:
    """``conf/heads/importance.yaml`` -> an :class:`ImportanceGate` (``tasks`` unused)."""
    return ImportanceGate(num_layers=num_layers, num_heads=num_heads, keep_context=keep_context, ffn=ffn)


@dataclass
class Importance:
    """Scores of one task: ``heads`` (L, H) and ``ffn`` (L,) (None when not scored), both normalised;
    ``raw_heads``/``raw_ffn`` before normalisation; ``examples`` scored."""

    heads: Tensor
    ffn: Tensor | None
    raw_heads: Tensor
    raw_ffn: Tensor | None
    examples: int


def normalize_per_layer(scores: Tensor) -> Tensor:
    """(L, H) divided by each layer's L2 norm (+1e-20, as the released code)."""
    return scores / (scores.norm(dim=-1, keepdim=True) + 1e-20)


def score_importance(
    encoder: nn.Module,
    loss_of: callable,
    batches: Iterable,
    *,
    kind: str = "ticket",
    ffn: bool = True,
    cumulative: bool = False,
) -> Importance:
    """One pass over ``batches`` in eval mode: the head (and FFN) importance of ``kind``.

    Args:
        encoder: the transformers model to hook (``MultiTaskModel.encoder.model``); a gate already in it
            (e.g. a mask) stays and composes.
        loss_of: ``batch -> (loss, n_examples)``: runs the model on one batch (whose forward goes through
            ``encoder``) and returns the task loss.
        batches: the scored data (e.g. an eval loader over the training split).
        kind: ``"ticket"`` or ``"michel"`` (module docstring).
        ffn: also score the FFN sub-layers.
        cumulative: Super Tickets' running-sum quirk (``ticket`` only).
    """
    if kind not in KINDS:
        raise ValueError(f"config key 'importance.kind': {kind!r} is not one of {KINDS}")
    layers, heads = head_shape(encoder)
    gate = ImportanceGate(num_layers=layers, num_heads=heads, keep_context=kind == "ticket", ffn=ffn)
    params = [p for p in encoder.parameters() if p.requires_grad]
    for p in params:  # only the gate's leaves need gradients: no weight gradients computed
        p.requires_grad_(False)
    total_h, total_f = torch.zeros(layers, heads), torch.zeros(layers)
    run_h, run_f, examples = torch.zeros(layers, heads), torch.zeros(layers), 0
    was_training = encoder.training
    encoder.eval()
    try:
        with install_head_gate(encoder, gate):
            for batch in batches:
                gate.clear()
                loss, n = loss_of(batch)
                loss.backward()
                examples += n
                if kind == "ticket":
                    batch_h = gate.per_token_abs().sum(dim=1).detach().cpu()
                    batch_f = gate.ffn_per_token_abs().sum(dim=1).detach().cpu() if ffn else total_f
                else:
                    batch_h = gate.values.grad.detach().abs().cpu()
                    batch_f = gate.ffn_values.grad.detach().abs().cpu() if ffn else total_f
                if cumulative:  # the released code adds the never-zeroed .grad after every batch
                    run_h, run_f = run_h + batch_h, run_f + (batch_f if ffn else 0)
                    batch_h, batch_f = run_h, run_f
                total_h += batch_h
                if ffn:
                    total_f += batch_f
    finally:
        gate.clear()
        for p in params:
            p.requires_grad_(True)
        encoder.train(was_training)
    raw_f = total_f if ffn else None
    return Importance(
        heads=normalize_per_layer(total_h),
        ffn=None if raw_f is None else raw_f / (raw_f.norm() + 1e-20),
        raw_heads=total_h,
        raw_ffn=raw_f,
        examples=examples,
    )
