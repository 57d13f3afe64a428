"""GradTS head importance (Ma et al. 2021, A.2-A.3): |∂L/∂W_K| + |∂L/∂W_V| per head, per training instance.

For one instance x and layer l, with the K and V projection weights (D_out × D_in) and their gradients
of x's own loss, the head score is the mean of ``|G_K| + |G_V|`` over the head's block:

* ``variant="columns"`` (the released code, faithful): the block is input columns ``h·d_h … (h+1)·d_h``
  of every output row (the code split the *input* dimension of ``nn.Linear.weight``);
* ``variant="rows"`` (per output head, what a head is): output rows ``h·d_h … (h+1)·d_h``, all columns.

Per-instance gradients come from ONE batched forward and backward: a Linear's weight gradient for
instance b is ``Σ_t g_{b,t} x_{b,t}ᵀ`` (its output gradient and input at each token), exact as long as the
summed loss is a sum of per-instance losses (``MultiTaskModel.example_losses``). The task-level matrix is
the mean of the un-normalised instance matrices; both are then sum-normalised per layer (A.2: the global
min-max the released code adds does not change a Kendall τ). Tasks are compared by Kendall τ-b between
their flattened matrices (A.4), auxiliary instances by τ-b against the main task's task-level matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

VARIANTS = ("columns", "rows")
# (key, value) Linear names inside each layer's attention, by family.
KV_NAMES = (
    ("attention.self.key", "attention.self.value"),  # BERT, RoBERTa, ELECTRA, XLM-R
    ("attention.self.key_proj", "attention.self.value_proj"),  # DeBERTa-v2
    ("attention.k_lin", "attention.v_lin"),  # DistilBERT
)


def kv_linears(model: nn.Module) -> list[tuple[nn.Linear, nn.Linear]]:
    """Per layer, the key and value projections of a transformers encoder (BERT-like, DeBERTa-v2,
    DistilBERT), in layer order."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None) or getattr(
        getattr(base, "transformer", None), "layer", None
    )
    for key, value in KV_NAMES:
        if layers is not None and all(_get(layer, key) is not None for layer in layers):
            return [(_get(layer, key), _get(layer, value)) for layer in layers]
    raise ValueError(
        f"GradTS importance does not support {type(model).__name__}: it needs separate key/value Linears "
        "per layer (BERT, RoBERTa, ELECTRA, XLM-R, DeBERTa-v2, DistilBERT)"
    )


def _get(module: nn.Module, dotted: str) -> nn.Module | None:
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module if isinstance(module, nn.Linear) else None


def normalize_rows(scores: Tensor) -> Tensor:
    """(..., L, H) divided by each layer's sum over heads."""
    return scores / scores.sum(dim=-1, keepdim=True).clamp_min(1e-30)


@dataclass
class GradTSImportance:
    """``task`` (L, H) and ``instances`` (N, L, H), both per-layer sum-normalised; ``raw_task`` before."""

    task: Tensor
    instances: Tensor
    raw_task: Tensor


class _Recorder:
    """Hooks one Linear: its input on forward, its output's gradient on backward (per call, in order)."""

    def __init__(self, linear: nn.Linear):
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []
        self.handle = linear.register_forward_hook(self._forward)

    def _forward(self, module, args, output):
        self.inputs.append(args[0].detach())
        output.register_hook(lambda g: self.grads.append(g.detach()))

    def per_example_abs(self, n_heads: int, variant: str) -> Tensor:
        """(B, H) head sums of |per-example weight gradient| of the last forward/backward."""
        x, g = self.inputs[-1], self.grads[-1]  # (B, T, D_in), (B, T, D_out)
        grad = torch.einsum("bto,bti->boi", g, x).abs()  # (B, D_out, D_in)
        d_out, d_in = grad.shape[1:]
        if variant == "rows":
            return grad.view(grad.shape[0], n_heads, d_out // n_heads, d_in).mean(dim=(2, 3))
        return grad.view(grad.shape[0], d_out, n_heads, d_in // n_heads).mean(dim=(1, 3))

    def clear(self) -> None:
        self.inputs.clear()
        self.grads.clear()


def gradts_importance(
    encoder: nn.Module,
    losses_of: Callable[[object], Tensor],
    batches: Iterable,
    *,
    num_heads: int,
    variant: str = "columns",
    dropout: bool = True,
) -> GradTSImportance:
    """One pass over ``batches``: every instance's (L, H) matrix and the task's.

    Args:
        encoder: the transformers model whose K/V projections are scored.
        losses_of: ``batch -> (B,)`` per-instance losses (``MultiTaskModel.example_losses``); its forward
            must run through ``encoder``, one window per sentence (sentences within the encoder's limit).
        batches: the training data to score, in order (instance i of the result is the i-th sentence).
        num_heads: H.
        variant: ``"columns"`` (faithful) or ``"rows"`` (per output head); see the module docstring.
        dropout: score in train mode (dropout on, as the released code) or eval mode.
    """
    if variant not in VARIANTS:
        raise ValueError(f"config key 'importance.variant': {variant!r} is not one of {VARIANTS}")
    pairs = kv_linears(encoder)
    recorders = [(_Recorder(k), _Recorder(v)) for k, v in pairs]
    kv = {p for pair in pairs for lin in pair for p in (lin.weight, lin.bias) if p is not None}
    frozen = [p for p in encoder.parameters() if p.requires_grad and p not in kv]
    for p in frozen:  # gradients flow to the K/V inputs only through activations: no other weight grads
        p.requires_grad_(False)
    was_training = encoder.training
    encoder.train(dropout)
    rows: list[Tensor] = []
    try:
        for batch in batches:
            losses = losses_of(batch)
            losses.sum().backward()
            for k, _ in recorders:
                if k.inputs[-1].shape[0] != losses.shape[0]:
                    raise ValueError("GradTS scores need one encoder window per sentence: shorten the inputs")
            rows.append(
                torch.stack([k.per_example_abs(num_heads, variant) + v.per_example_abs(num_heads, variant)
                             for k, v in recorders], dim=1).cpu()  # (B, L, H)
            )  # fmt: skip
            for k, v in recorders:
                k.clear()
                v.clear()
            encoder.zero_grad(set_to_none=True)
    finally:
        for k, v in recorders:
            k.handle.remove()
            v.handle.remove()
        for p in frozen:
            p.requires_grad_(True)
        encoder.train(was_training)
    raw = torch.cat(rows) if rows else torch.zeros(0, len(pairs), num_heads)
    raw_task = raw.mean(dim=0)
    return GradTSImportance(task=normalize_rows(raw_task), instances=normalize_rows(raw), raw_task=raw_task)


def kendall_tau(a: Tensor, b: Tensor) -> float:
    """Kendall τ-b (scipy's default, tie-corrected) between two flattened (L, H) matrices."""
    from scipy.stats import kendalltau

    return float(kendalltau(a.flatten().numpy(), b.flatten().numpy())[0])


def tau_matrix(matrices: dict[str, Tensor]) -> list[list[float]]:
    """τ-b between every pair of tasks' (L, H) importance matrices, in ``matrices`` order."""
    names = list(matrices)
    return [[kendall_tau(matrices[a], matrices[b]) for b in names] for a in names]


def instance_taus(main: Tensor, instances: Tensor) -> Tensor:
    """τ-b of each auxiliary instance's (L, H) matrix against the main task's task-level matrix: (N,)."""
    return torch.tensor([kendall_tau(main, inst) for inst in instances], dtype=torch.float64)
