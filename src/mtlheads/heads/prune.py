"""Physical head pruning: remove attention heads from the weight matrices (transformers 5 has no prune_heads).

``prune_heads(model, gates)`` removes head ``h`` of layer ``l`` when ``gates[l, h] == 0`` and folds the other
gate values into the output projection, so the pruned model computes what the full model computes with
``install_head_gate(model, MaskGate(mask=gates))``. Head ids always refer to the ORIGINAL heads: the kept
ones are recorded in ``config.mtlheads_kept_heads`` (saved in config.json), so pruning again composes.
``config.num_attention_heads`` keeps the original count. Do not install a head gate on a pruned model.

Supported: BERT-like encoders (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM) and DeBERTa-v2, SDPA or eager.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_model, save_model
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from mtlheads.encoder.load import _needs_prefix_space

CONFIG_KEY = "mtlheads_kept_heads"
WEIGHTS = "model.safetensors"
# model_type -> names of the Linear layers in ``attention.self`` whose output rows are per-head.
HEAD_ROWS = {
    "bert": ("query", "key", "value"),
    "roberta": ("query", "key", "value"),
    "xlm-roberta": ("query", "key", "value"),
    "electra": ("query", "key", "value"),
    "deberta-v2": ("query_proj", "key_proj", "value_proj", "pos_key_proj", "pos_query_proj"),
}


class _Headless:
    """Mixin for a self-attention left without heads: a ``(B, T, 0)`` context, no parameters.

    Its attention output module then gives ``dense.bias`` (a ``Linear(0, D)``), then dropout, residual and
    LayerNorm, as the gated model does with every head at 0. The class derives from the original one, so
    transformers' ``output_attentions`` hooks still find it (it gives ``(B, 0, T, T)`` weights).
    """

    def forward(self, hidden_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor | None]:
        ref = kwargs.get("query_states")
        ref = hidden_states if ref is None else ref  # DeBERTa may attend from other query states
        context = ref.new_zeros(*ref.shape[:-1], 0)  # (B, T, 0)
        want = kwargs.get("output_attentions", args[1] if len(args) > 1 else False)  # DeBERTa: positional
        impl = getattr(getattr(self, "config", None), "_attn_implementation", "eager")  # DeBERTa: eager
        if not want or impl != "eager":
            return context, None
        return context, ref.new_zeros(ref.shape[0], 0, ref.shape[-2], hidden_states.shape[-2])

    def extra_repr(self) -> str:
        return "num_attention_heads=0"


_HEADLESS: dict[type, type] = {}


def _headless(cls: type) -> type:
    if cls not in _HEADLESS:
        _HEADLESS[cls] = type(f"Headless{cls.__name__}", (_Headless, cls), {"__module__": __name__})
    return _HEADLESS[cls]


def _attention_blocks(model: nn.Module) -> list[nn.Module]:
    """The per-layer attention blocks (``.self`` + ``.output.dense``), or a ValueError if unsupported."""
    kind = getattr(getattr(model, "config", None), "model_type", None)
    layers = getattr(getattr(getattr(model, "base_model", model), "encoder", None), "layer", None)
    if kind not in HEAD_ROWS or layers is None:
        raise ValueError(
            f"prune_heads does not support {type(model).__name__} (model_type {kind!r}): supported "
            f"model types are {', '.join(HEAD_ROWS)}; use install_head_gate(model, MaskGate(...)) to switch "
            "heads off instead"
        )
    return [layer.attention for layer in layers]


def kept_heads(model: nn.Module) -> list[list[int]]:
    """Original ids of the heads each layer still has: ``L`` lists (all heads if never pruned)."""
    kept = getattr(model.config, CONFIG_KEY, None)
    if kept is None:
        layers, heads = len(_attention_blocks(model)), model.config.num_attention_heads
        return [list(range(heads)) for _ in range(layers)]
    return [list(k) for k in kept]


def _set_weight(linear: nn.Linear, weight: Tensor, bias: Tensor | None) -> None:
    """Swap ``linear``'s parameters in place (the module, and hooks on it, stay)."""
    linear.weight = nn.Parameter(weight.contiguous(), requires_grad=linear.weight.requires_grad)
    if bias is not None:
        linear.bias = nn.Parameter(bias.contiguous(), requires_grad=linear.bias.requires_grad)
    linear.out_features, linear.in_features = weight.shape


@torch.no_grad()
def prune_heads(model: nn.Module, gates: Tensor) -> nn.Module:
    """Remove heads with gate 0 and fold the other gate values into the attention output projection.

    Args:
        model: a supported transformers encoder (base model or a model with a head), possibly pruned before.
        gates: ``(L, H)`` head multipliers over the ORIGINAL heads (``H = config.num_attention_heads``).
            Head ``h`` of layer ``l`` is removed when ``gates[l, h] == 0``; removed heads stay removed.

    Returns:
        ``model``, changed in place. In eval mode it matches the unpruned model under
        ``install_head_gate(model, MaskGate(mask=gates))`` (up to float rounding). A layer without heads keeps
        its residual path: its attention block adds ``output.dense.bias`` only.

    Raises:
        ValueError: unsupported architecture, a wrong gate shape, or a head gate still installed.
    """
    blocks, current = _attention_blocks(model), kept_heads(model)
    shape = (len(blocks), model.config.num_attention_heads)
    if tuple(gates.shape) != shape:
        raise ValueError(
            f"gates shape {tuple(gates.shape)} != (layers, heads) {shape} of {type(model).__name__}"
        )
    if any(block.output.dense._forward_pre_hooks for block in blocks):
        raise ValueError("remove the head gate (handle.remove()) before pruning: its hooks see all heads")
    gates = gates.detach().float().cpu()
    new_kept = []
    for block, heads, g in zip(blocks, current, gates, strict=True):
        attn, dense = block.self, block.output.dense
        d_h = attn.attention_head_size
        local = [i for i, h in enumerate(heads) if g[h] != 0]  # positions in the current layout
        new_kept.append([heads[i] for i in local])
        if len(local) == len(heads) and bool((g[heads] == 1).all()):
            continue  # nothing removed, nothing to fold
        rows = (torch.tensor(local, dtype=torch.long).unsqueeze(1) * d_h + torch.arange(d_h)).flatten()
        rows = rows.to(dense.weight.device)  # (kept·d_h,) indices into the current H·d_h
        scale = g[new_kept[-1]].repeat_interleave(d_h).to(dense.weight)  # (kept·d_h,)
        _set_weight(dense, dense.weight[:, rows] * scale, None)  # (D, kept·d_h)
        names = [
            n for n in HEAD_ROWS[model.config.model_type] if isinstance(getattr(attn, n, None), nn.Linear)
        ]
        for name in names:
            lin = getattr(attn, name)
            _set_weight(lin, lin.weight[rows], None if lin.bias is None else lin.bias[rows])
        attn.num_attention_heads, attn.all_head_size = len(local), len(local) * d_h
        if not local:
            for name in names:
                delattr(attn, name)
            attn.__class__ = _headless(type(attn))
    setattr(model.config, CONFIG_KEY, new_kept)
    return model


class _NoFFN(nn.Module):
    """Stands in for a removed FFN sub-layer's Linears: ``(..., D_in) -> (..., width)`` zeros, no parameters.

    The FFN input Linear becomes width 0 and the output Linear gives zeros, so the layer adds nothing and
    keeps its residual and LayerNorm: what an FFN gate of 0 gives.
    """

    def __init__(self, width: int):
        super().__init__()
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        return x.new_zeros(*x.shape[:-1], self.width)

    def extra_repr(self) -> str:
        return f"width={self.width} (removed FFN)"


@torch.no_grad()
def prune_ffn(model: nn.Module, ffn: Tensor) -> nn.Module:
    """Remove the FFN sub-layers whose multiplier is 0 (supported families as :func:`prune_heads`).

    Args:
        model: a supported transformers encoder.
        ffn: (L,) 0/1 multipliers; a layer at 0 loses its intermediate and output Linears.
    """
    layers = getattr(getattr(getattr(model, "base_model", model), "encoder", None), "layer", None)
    _attention_blocks(model)  # the same families as heads, or a ValueError naming this one
    if ffn.shape != (len(layers),) or not bool(((ffn == 0) | (ffn == 1)).all()):
        raise ValueError(f"FFN mask must be (L,) = ({len(layers)},) of 0/1, got {tuple(ffn.shape)}")
    for layer, keep in zip(layers, ffn.tolist(), strict=True):
        if not keep and not isinstance(layer.output.dense, _NoFFN):
            layer.intermediate.dense = _NoFFN(0)
            layer.output.dense = _NoFFN(layer.output.dense.out_features)
    return model


def fold_mask(model: nn.Module, heads: Tensor, ffn: Tensor | None = None) -> bool:
    """Apply a fixed 0/1 mask by removing heads (and FFNs) from the weights, if the family allows it.

    Returns:
        True when folded; False (model unchanged) for families :func:`prune_heads` does not support or
        masks that are not 0/1 (the caller then multiplies activations with hooks instead).
    """
    binary = bool(((heads == 0) | (heads == 1)).all()) and (
        ffn is None or bool(((ffn == 0) | (ffn == 1)).all())
    )
    try:
        _attention_blocks(model)
    except ValueError:
        return False
    if not binary:
        return False
    prune_heads(model, heads)
    if ffn is not None:
        prune_ffn(model, ffn)
    return True


def layer_flops(config, heads: int, seq_len: int) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of one encoder layer on one sequence; biases, softmax, LayerNorm left out.

    Args:
        config: the model config (``hidden_size``, ``intermediate_size``, ``num_attention_heads``).
        heads: heads kept in this layer.
        seq_len: ``T`` subwords.

    Returns:
        ``{"qkv", "scores", "context", "out", "ffn"}``. For DeBERTa-v2 with relative attention ``"scores"``
        includes the c2p/p2c terms and ``"qkv"`` the relative-position projections (computed once per
        batch in practice, counted here once per sequence).
    """
    d, t = config.hidden_size, seq_len
    width = heads * getattr(config, "attention_head_size", d // config.num_attention_heads)  # kept·d_h
    pos = [p for p in (getattr(config, "pos_att_type", None) or []) if p in ("c2p", "p2c")]
    pos = pos if getattr(config, "relative_attention", False) else []
    span = getattr(config, "position_buckets", -1)
    span = span if span > 0 else getattr(config, "max_relative_positions", -1)
    span = span if span > 0 else config.max_position_embeddings
    return {
        "qkv": 2 * (3 * t + len(pos) * 2 * span) * d * width,  # + pos. projections of 2·span embeddings
        "scores": 2 * t * (t + len(pos) * 2 * span) * width,  # QKᵀ + c2p/p2c (T x 2·span each)
        "context": 2 * t * t * width,
        "out": 2 * t * width * d,
        "ffn": 2 * 2 * t * d * config.intermediate_size,
    }


def encoder_flops(model_or_config, seq_len: int, kept: list[list[int]] | None = None) -> int:
    """Sum of ``layer_flops`` over the layers for one sequence (the model's kept heads by default)."""
    config = getattr(model_or_config, "config", model_or_config)
    if kept is None:
        kept = (
            getattr(config, CONFIG_KEY, None)
            or [range(config.num_attention_heads)] * config.num_hidden_layers
        )
    return sum(sum(layer_flops(config, len(k), seq_len).values()) for k in kept)


def save_pruned(model: nn.Module, tokenizer: PreTrainedTokenizerBase | None, path: str | os.PathLike) -> Path:
    """Save a (pruned) model for ``load_pruned``: config.json (kept heads included), weights, tokenizer.

    ``from_pretrained`` cannot read this folder (the matrices are smaller than the config says).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    setattr(model.config, CONFIG_KEY, kept_heads(model))
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(path)
    save_model(model, str(path / WEIGHTS), metadata={"format": "pt"})  # shared (tied) tensors stored once
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def load_pruned(
    path: str | os.PathLike, *, attn_implementation: str = "sdpa"
) -> tuple[nn.Module, PreTrainedTokenizerBase | None]:
    """Load a folder written by ``save_pruned``: the ``from_pretrained`` of pruned models.

    Builds the saved class (``config.architectures``) at full size, prunes the same heads, then loads the
    weights strictly.

    Args:
        path: the folder.
        attn_implementation: ``"sdpa"`` (falls back to ``"eager"`` where unsupported, e.g. DeBERTa-v2) or
            ``"eager"``.

    Returns:
        ``(model, tokenizer)``: the model in eval mode (float32); the tokenizer is None if none was saved.
    """
    path = Path(path)
    config = AutoConfig.from_pretrained(path)
    kept = getattr(config, CONFIG_KEY, None)
    if kept is None:
        raise ValueError(f"{path} has no {CONFIG_KEY} in config.json: not written by save_pruned")
    setattr(config, CONFIG_KEY, None)  # the model is built at full size first
    cls = getattr(transformers, (config.architectures or ["AutoModel"])[0], AutoModel)
    build = cls.from_config if cls is AutoModel else cls._from_config
    try:
        model = build(config, attn_implementation=attn_implementation)
    except ValueError as e:
        if attn_implementation == "eager" or "does not support" not in str(e):
            raise
        model = build(config, attn_implementation="eager")
    mask = torch.zeros(len(kept), config.num_attention_heads)
    for layer, heads in enumerate(kept):
        mask[layer, heads] = 1.0
    load_model(prune_heads(model, mask), str(path / WEIGHTS), strict=True)
    tokenizer = None
    if (path / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path)
        if _needs_prefix_space(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    return model.eval(), tokenizer
