"""Tiny random encoders of the supported families, and one fixed padded batch to run them on."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

V = 99  # vocabulary size of every tiny config


def base_config(*, layers: int, heads: int = 4, hidden: int = 32) -> dict:
    return dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=37,
        vocab_size=V,
    )


def tiny_model(
    model_type: str,
    config: dict,
    *,
    impl: str = "eager",
    dtype: torch.dtype = torch.float32,
    token_head: bool = False,
) -> nn.Module:
    """A seeded random ``model_type`` in eval mode; skips the test if it has no ``impl`` attention path."""
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(model_type, **config, **({"num_labels": 3} if token_head else {}))
    auto = AutoModelForTokenClassification if token_head else AutoModel
    try:
        model = auto.from_config(cfg, attn_implementation=impl)
    except ValueError as e:  # e.g. DeBERTa-v2 has no SDPA path
        pytest.skip(f"{model_type} does not support {impl}: {e}")
    return model.to(dtype).eval()


def inputs() -> dict[str, torch.Tensor]:
    """Two rows of 7 random ids; the second is padded after 5."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def run(model: nn.Module) -> torch.Tensor:
    """``(B, T, D)`` hidden states, or ``(B, T, labels)`` logits for a model with a token head."""
    out = model(**inputs())
    return out.logits if hasattr(out, "logits") else out.last_hidden_state
