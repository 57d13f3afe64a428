"""mode=tickets: Super Tickets' single-task pipeline (Liang et al. 2021): fine-tune, score, mask, rewind.

``mtlheads mode=tickets taskset=rte ...`` writes into its run dir:

1. ``dense/``: the full model fine-tuned (an ``mtlheads mode=stl`` child run);
2. ``importance.pt|json``: head and FFN importance of ``dense`` on the training data (``importance=``);
3. ``masks/<kind>_<pct>.json``: nested winning tickets at ``mode.levels`` (paired FFN levels), losing
   tickets, random tickets with the winning per-layer counts, and ``dense_00`` (nothing pruned);
4. ``rewind/``: one job per mask and seed of a Hydra multirun (``mode=stl heads=mask``): each starts again
   from the pretrained weights (a fresh encoder and task head) and fine-tunes under its mask;
5. ``tickets.json``, ``tickets.md``, ``phase.png|pdf``: dev score against sparsity per ticket kind, and the
   super ticket (the best winning level), whose mask is copied to ``super_ticket.json``.

Every step reads the previous one's files: with ``resume=true`` a killed pipeline continues where it stopped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mtlheads.build import read_split
from mtlheads.checkpoint import load_model
from mtlheads.errors import ConfigError
from mtlheads.heads.masks import Mask, write_mask_file
from mtlheads.heads.tickets import losing_masks, random_masks, winning_masks
from mtlheads.launch.children import parent_overrides, run_child
from mtlheads.launch.jobs import job_dir
from mtlheads.report.tickets import collect_tickets, phase_plot, summarize, ticket_name, to_markdown
from mtlheads.score import score_task
from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text

# Keys the pipeline sets for its children itself.
_OWN_KEYS = ("mode", "importance", "seed", "out_dir", "resume", "heads", "tickets")


def run(cfg: DictConfig) -> float:
    out = job_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    common = [*parent_overrides(_OWN_KEYS), *(["resume=true"] if cfg.get("resume") else [])]
    task = _single_task(cfg)

    if not (out / "dense" / "metrics.json").is_file():
        status = run_child(["mode=stl", f"seed={cfg.seed}", f"out_dir={out / 'dense'}", *common])
        if status:
            raise RuntimeError(f"the dense fine-tune failed (exit {status}); see {out / 'dense'}")
    if not (out / "importance.pt").is_file():
        _score(cfg, out, task)
    masks = _write_masks(cfg, out)

    sweep = out / "rewind"
    files = ",".join(str(masks[name]) for name in sorted(masks))
    seeds = ",".join(str(s) for s in cfg.mode.seeds)
    status = run_child(
        [
            "mode=stl",
            "heads=mask",
            f"heads.file={files}",
            f"seed={seeds}",
            f"hydra.sweep.dir={sweep}",
            *common,
        ],
        multirun=True,
    )
    summary = summarize(collect_tickets(sweep))
    summary.update(task=task, failed_jobs=status != 0, importance=cfg.importance.kind)
    atomic_write_json(out / "tickets.json", summary)
    atomic_write_text(out / "tickets.md", to_markdown(summary, f"Tickets: {task}"))
    phase_plot(summary, out / "phase", title=task)
    best = summary["super_ticket"]
    if best is None:
        raise RuntimeError(f"no winning ticket finished (see {sweep})")
    shutil.copyfile(masks[ticket_name("winning", best["level"])], out / "super_ticket.json")
    print(to_markdown(summary, f"Tickets: {task}"), end="")
    return float(best["mean"])


def _single_task(cfg: DictConfig) -> str:
    if len(cfg.tasks) != 1:
        raise ConfigError(
            f"mode=tickets finds one task's tickets, but taskset gives {list(cfg.tasks)}", key="taskset"
        )
    return next(iter(cfg.tasks))


def _score(cfg: DictConfig, out: Path, task: str) -> None:
    model, tokenizer, train_cfg = load_model(out / "dense")
    split = read_split(model.tasks[task], train_cfg.tasks[task].train, tokenizer)
    icfg = cfg.importance
    scores = score_task(
        model, task, split, tokenizer,
        max_tokens=cfg.batch.eval_max_tokens, max_sentences=cfg.batch.max_sentences,
        kind=icfg.kind, ffn=icfg.get("ffn", True), cumulative=icfg.get("cumulative", False),
        variant=icfg.get("variant", "columns"), dropout=icfg.get("dropout", True), limit=icfg.get("limit"),
    )  # fmt: skip
    atomic_save({"kind": icfg.kind, "tasks": {task: scores.to_dict()}}, out / "importance.pt")
    summary = {"heads": scores.heads.tolist(), "ffn": None if scores.ffn is None else scores.ffn.tolist()}
    atomic_write_json(out / "importance.json", {"kind": icfg.kind, "tasks": {task: summary}})


def _write_masks(cfg: DictConfig, out: Path) -> dict[str, Path]:
    """Every ticket's mask file (written once; a resumed pipeline reuses them): ``{name: path}``."""
    scores = next(iter(torch.load(out / "importance.pt", weights_only=True)["tasks"].values()))
    heads, ffn = scores["heads"], scores["ffn"]
    levels = [float(x) for x in cfg.mode.levels]
    winning = winning_masks(heads, ffn, levels)
    tickets = {"winning": winning, "losing": losing_masks(heads, ffn, levels)}
    tickets["random"] = random_masks(winning, seed=cfg.seed)
    dense = Mask(torch.ones_like(heads), None if ffn is None else torch.ones_like(ffn))
    tickets["dense"] = {0.0: dense}
    paths = {}
    for kind in [*cfg.mode.kinds, "dense"]:
        for level, mask in tickets[kind].items():
            name = ticket_name(kind, level)
            path = out / "masks" / f"{name}.json"
            if not path.is_file():
                write_mask_file(path, mask)
            paths[name] = path
    return paths
