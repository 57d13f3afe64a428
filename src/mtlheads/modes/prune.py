"""mode=prune: physically remove the heads a gated run closed, and save a smaller model.

``mtlheads mode=prune ckpt=<gated run> out=<dir>`` writes ``<dir>/encoder`` (the pruned transformers
model + tokenizer) and ``<dir>/model.pt`` (decoders, vocabularies, config); see
:func:`mtlheads.checkpoint.save_pruned_model`. Loaded back (``mode=eval ckpt=<dir>``) it gives the gated
model's outputs: the open gates' values are folded into the output projections.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mtlheads.checkpoint import load_model, save_pruned_model
from mtlheads.errors import ConfigError
from mtlheads.heads.prune import kept_heads, prune_heads
from mtlheads.launch.jobs import job_dir
from mtlheads.utils.io import atomic_write_json


def run(cfg: DictConfig) -> float:
    model, tokenizer, _ = load_model(cfg.ckpt)
    if model.heads is None:
        raise ConfigError(
            f"config key 'ckpt': {cfg.ckpt} was trained without head gates: nothing to prune", key="ckpt"
        )
    out = Path(cfg.out) if cfg.get("out") else job_dir(cfg)
    gates = model.heads.eval_values()
    model.set_heads(None)  # the hooks see all heads; pruning changes the widths
    prune_heads(model.encoder.model, gates)
    save_pruned_model(model, tokenizer, out, gates)
    kept = kept_heads(model.encoder.model)
    summary = {
        "checkpoint": str(cfg.ckpt),
        "kept_heads": kept,
        "open_heads": sum(map(len, kept)),
        "total_heads": int(gates.numel()),
        "open_per_layer": [len(k) for k in kept],
    }
    atomic_write_json(out / "prune.json", summary)
    print(
        f"kept {summary['open_heads']} of {summary['total_heads']} heads "
        f"(per layer {summary['open_per_layer']}): {out}"
    )
    return float(summary["open_heads"])
