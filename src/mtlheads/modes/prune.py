"""mode=prune: physically remove the heads a gated run closed, and save a smaller model.

``mtlheads mode=prune ckpt=<gated run>/checkpoints/best.ckpt out=<dir>`` writes ``<dir>/encoder`` (the
pruned transformers model + tokenizer, see ``encoder.prune.save_pruned``) and ``<dir>/model.pt`` (the
task decoders, vocabularies and the training config). ``load_pruned_model(<dir>)`` rebuilds it; in eval
it gives the gated model's outputs (the open gates' values are folded into the output projections).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mtlheads.build import build_tasks, wrap_encoder
from mtlheads.heads.prune import kept_heads, load_pruned, prune_heads, save_pruned
from mtlheads.model import MultiTaskModel, OptimConfig
from mtlheads.modes.evaluate import load_checkpoint
from mtlheads.modes.train import output_dir
from mtlheads.utils.io import atomic_save, atomic_write_json


def run(cfg: DictConfig) -> float:
    model, tokenizer, train_cfg = load_checkpoint(cfg.ckpt)
    if model.l0 is None:
        raise ValueError(f"config key 'ckpt': {cfg.ckpt} is not a mode=gate run (it has no head gates)")
    out = Path(cfg.out) if cfg.get("out") else output_dir(cfg)
    gates = model.l0.gate.deterministic().detach()
    model.l0.handle.remove()
    model.l0 = None
    prune_heads(model.encoder.model, gates)
    save_pruned(model.encoder.model, tokenizer, out / "encoder")
    config = OmegaConf.to_container(train_cfg, resolve=True)
    config["mode"].pop("gate", None)  # the pruned model is ungated
    atomic_save(
        {
            "mtlheads_config": config,
            "mtlheads_vocab": {n: t.vocab_state() for n, t in model.tasks.items()},
            "decoders": model.decoders.state_dict(),
            "gates": gates,
        },
        out / "model.pt",
    )
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


def load_pruned_model(path: str | Path) -> tuple[MultiTaskModel, object]:
    """A folder written by mode=prune -> (model in eval mode, tokenizer)."""
    path = Path(path)
    saved = torch.load(path / "model.pt", map_location="cpu", weights_only=False)
    cfg = OmegaConf.create(saved["mtlheads_config"])
    tasks = build_tasks(cfg)
    for name, task in tasks.items():
        task.load_vocab_state(saved["mtlheads_vocab"][name])
    hf_model, tokenizer = load_pruned(path / "encoder", attn_implementation=cfg.encoder.attn_implementation)
    model = MultiTaskModel(
        encoder=wrap_encoder(hf_model, tokenizer, cfg.encoder), tasks=tasks, optim=OptimConfig()
    )
    model.decoders.load_state_dict(saved["decoders"])
    model.run_config = saved["mtlheads_config"]
    return model.eval(), tokenizer
