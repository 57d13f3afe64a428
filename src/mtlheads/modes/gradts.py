"""mode=gradts: GradTS auxiliary-task selection (Ma et al. 2021) in stages that read each other's files.

``mtlheads mode=gradts stage=<stage> taskset=<candidates> [main=<task>] [threshold=0.62]``, all in one
run dir (give ``out_dir=`` or ``hydra.run.dir=`` to come back to it):

* ``importance``: per candidate task, a brief fine-tune (``gradts.finetune`` overrides; an ``mtlheads
  mode=stl`` child in ``finetune/<task>``), then ONE scoring pass that gives its task-level (L, H) matrix
  and every training instance's (``importance/<task>.pt``, ``heads/gradts.py``).
* ``correlate``: Kendall τ-b between the tasks' matrices (``correlate/tau.{json,md,png,pdf}``) and of each
  auxiliary instance against each main task (``correlate/instances/<main>/<aux>.pt``).
* ``trial``: GradTS-trial for ``main``: auxiliaries by τ, largest first, added one at a time, each MTL run
  from the pretrained encoder (``trial/<main>/k<k>``, a multirun over ``gradts.seeds``), stopping at the
  first run whose best-epoch main dev score is below the previous run's last-epoch score; the selection is
  the run with the best main dev score (``trial/<main>/trial.json``).
* ``fg``: GradTS-fg: the trial's auxiliaries keep the instances with τ ≥ ``threshold`` (the main task is
  whole), one MTL run (``fg/<main>``), usage and dev score in ``fg/<main>/fg.json``.
* ``all``: every stage for every main task (or only ``main``), plus STL and all-tasks MTL, and one table
  (``gradts.md``).

Each stage skips what its files say is done, so ``resume=true`` (passed on to the children) continues a
killed pipeline and a stage can be re-run alone.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mtlheads.build import build_tasks, read_split
from mtlheads.checkpoint import load_model
from mtlheads.errors import ConfigError
from mtlheads.heads.gradts import instance_taus, tau_matrix
from mtlheads.launch.children import parent_overrides, run_child
from mtlheads.launch.jobs import job_dir
from mtlheads.report.gradts import gradts_table, tau_heatmap, tau_markdown
from mtlheads.score import score_task
from mtlheads.utils.io import atomic_save, atomic_write_json, atomic_write_text

STAGES = ("importance", "correlate", "trial", "fg", "all")
_OWN_KEYS = ("mode", "stage", "main", "threshold", "gradts", "seed", "out_dir", "resume", "taskset", "tasks")


def run(cfg: DictConfig) -> float:
    if cfg.stage not in STAGES:
        raise ConfigError(f"config key 'stage': {cfg.stage!r} is not one of {STAGES}", key="stage")
    out = job_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"config.{cfg.stage}.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    tasks = list(cfg.tasks)
    common = [*parent_overrides(_OWN_KEYS), *(["resume=true"] if cfg.get("resume") else [])]
    if cfg.stage in ("importance", "all"):
        for task in tasks:
            importance(cfg, out, task, common)
    if cfg.stage in ("correlate", "all"):
        correlate(out, tasks)
    if cfg.stage in ("importance", "correlate"):
        return 0.0
    mains = tasks if cfg.stage == "all" and not cfg.get("main") else [_main(cfg, tasks)]
    metric = {name: task.main_metric for name, task in build_tasks(cfg).items()}
    for main in mains:
        if cfg.stage in ("trial", "all"):
            trial(cfg, out, main, tasks, metric[main], common)
        if cfg.stage in ("fg", "all"):
            fine_grained(cfg, out, main, metric[main], common)
    if cfg.stage == "all":
        return _baselines_and_table(cfg, out, tasks, mains, metric, common)
    return 0.0


def _main(cfg: DictConfig, tasks: list[str]) -> str:
    if cfg.get("main") not in tasks:
        raise ConfigError(
            f"config key 'main': {cfg.get('main')!r} must be one of the task set {tasks}", key="main"
        )
    return cfg.main


def _taskset(names: list[str]) -> str:
    return "taskset=[" + ",".join(names) + "]"


def importance(cfg: DictConfig, out: Path, task: str, common: list[str]) -> None:
    """Brief fine-tune of ``task`` alone, then its task and instance matrices in one scoring pass."""
    target = out / "importance" / f"{task}.pt"
    if target.is_file():
        return
    tuned = out / "finetune" / task
    if not (tuned / "metrics.json").is_file():
        args = ["mode=stl", f"taskset={task}", f"seed={cfg.seed}", f"out_dir={tuned}", *cfg.gradts.finetune]
        if run_child([*common, *args]):
            raise RuntimeError(f"the fine-tune of {task} failed; see {tuned}")
    model, tokenizer, train_cfg = load_model(tuned)
    split = read_split(model.tasks[task], train_cfg.tasks[task].train, tokenizer)
    batch = {"max_tokens": cfg.batch.eval_max_tokens, "max_sentences": cfg.batch.max_sentences}
    g = cfg.gradts
    scores = score_task(
        model,
        task,
        split,
        tokenizer,
        kind="gradts",
        variant=g.variant,
        dropout=g.dropout,
        limit=g.limit,
        **batch,
    )
    atomic_save({"task": scores.heads, "instances": scores.instances, "examples": scores.examples}, target)
    atomic_write_json(target.with_suffix(".json"), {"task": task, "examples": scores.examples,
                                                    "matrix": scores.heads.tolist()})  # fmt: skip


def _matrices(out: Path, tasks: list[str]) -> dict[str, dict]:
    missing = [t for t in tasks if not (out / "importance" / f"{t}.pt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{out / 'importance'}: no matrices for {missing}: run stage=importance first"
        )
    return {t: torch.load(out / "importance" / f"{t}.pt", weights_only=True) for t in tasks}


def correlate(out: Path, tasks: list[str]) -> None:
    """τ-b between tasks, and of every auxiliary instance against every main task."""
    mats = _matrices(out, tasks)
    tau = tau_matrix({t: m["task"] for t, m in mats.items()})
    atomic_write_json(out / "correlate" / "tau.json", {"tasks": tasks, "tau": tau})
    atomic_write_text(out / "correlate" / "tau.md", tau_markdown(tasks, tau))
    tau_heatmap(tasks, tau, out / "correlate" / "tau")
    for main in tasks:
        for aux in tasks:
            path = out / "correlate" / "instances" / main / f"{aux}.pt"
            if aux != main and not path.is_file():
                atomic_save(instance_taus(mats[main]["task"], mats[aux]["instances"]), path)


def _scores(sweep: Path, main: str, metric: str) -> list[dict]:
    """Per finished job of a sweep: the main task's best-epoch and last-epoch dev score."""
    rows = []
    for path in sorted(sweep.glob("*/metrics.json")):
        history = json.loads(path.read_text(encoding="utf-8"))["history"]
        values = [float(h[main][metric]) for h in history]
        rows.append({"best": max(values), "last": values[-1], "dir": str(path.parent)})
    return rows


def _sweep(cfg: DictConfig, sweep: Path, names: list[str], common: list[str], extra: list[str] = ()) -> None:
    if len(list(sweep.glob("*/metrics.json"))) < len(cfg.gradts.seeds):
        seeds = ",".join(str(s) for s in cfg.gradts.seeds)
        mode = "mode=mtl" if len(names) > 1 else "mode=stl"
        args = [mode, _taskset(names), f"seed={seeds}", f"hydra.sweep.dir={sweep}", *cfg.gradts.train, *extra]
        run_child([*common, *args], multirun=True)


def _mean(rows: list[dict], key: str) -> float:
    if not rows:
        raise RuntimeError("no finished run to read a score from (see the sweep's failures.json)")
    return statistics.fmean(r[key] for r in rows)


def trial(cfg: DictConfig, out: Path, main: str, tasks: list[str], metric: str, common: list[str]) -> dict:
    """GradTS-trial for ``main`` (module docstring); returns and saves the trial record."""
    tau = json.loads((out / "correlate" / "tau.json").read_text(encoding="utf-8"))
    row = dict(zip(tau["tasks"], tau["tau"][tau["tasks"].index(main)], strict=True))
    order = sorted((t for t in tasks if t != main), key=lambda t: -row[t])
    runs, previous_last = [], None
    for k in range(1, len(order) + 1):
        sweep = out / "trial" / main / f"k{k}"
        _sweep(cfg, sweep, [main, *order[:k]], common)
        rows = _scores(sweep, main, metric)
        best, last = _mean(rows, "best"), _mean(rows, "last")
        runs.append(
            {"k": k, "aux": order[:k], "best": best, "last": last, "seed_bests": [r["best"] for r in rows]}
        )
        if previous_last is not None and best < previous_last:  # the released rule: best-of-epochs vs last
            break
        previous_last = last
    chosen = max(runs, key=lambda r: r["best"])
    record = {"main": main, "metric": metric, "order": order, "tau": [row[t] for t in order], "runs": runs,
              "selected": chosen["aux"], "dev": chosen["best"], "dev_seeds": chosen["seed_bests"],
              "stopped_at": runs[-1]["k"]}  # fmt: skip
    atomic_write_json(out / "trial" / main / "trial.json", record)
    return record


def fine_grained(cfg: DictConfig, out: Path, main: str, metric: str, common: list[str]) -> dict:
    """GradTS-fg for ``main``: the trial's auxiliaries keep their instances with τ ≥ threshold."""
    selected = json.loads((out / "trial" / main / "trial.json").read_text(encoding="utf-8"))["selected"]
    extra, usage = [], {}
    for aux in selected:
        taus = torch.load(out / "correlate" / "instances" / main / f"{aux}.pt", weights_only=True)
        keep = [i for i, t in enumerate(taus.tolist()) if t >= cfg.threshold]
        path = out / "fg" / main / f"keep_{aux}.json"
        atomic_write_json(path, keep)
        extra.append(f"+tasks.{aux}.keep={path}")
        usage[aux] = {"kept": len(keep), "scored": len(taus)}
    sweep = out / "fg" / main / f"t{cfg.threshold}"
    _sweep(cfg, sweep, [main, *selected], common, extra)
    rows = _scores(sweep, main, metric)
    record = {"main": main, "metric": metric, "threshold": cfg.threshold, "aux": selected, "usage": usage,
              "dev": _mean(rows, "best"), "dev_seeds": [r["best"] for r in rows]}  # fmt: skip
    atomic_write_json(out / "fg" / main / "fg.json", record)
    return record


def _baselines_and_table(
    cfg: DictConfig, out: Path, tasks: list[str], mains: list[str], metric: dict, common: list[str]
) -> float:
    _sweep(cfg, out / "mtl_all", tasks, common)
    rows = {}
    for main in mains:
        _sweep(cfg, out / "stl" / main, [main], common)
        trial_rec = json.loads((out / "trial" / main / "trial.json").read_text(encoding="utf-8"))
        fg_rec = json.loads((out / "fg" / main / "fg.json").read_text(encoding="utf-8"))
        rows[main] = {
            "metric": metric[main],
            "stl": [r["best"] for r in _scores(out / "stl" / main, main, metric[main])],
            "mtl_all": [r["best"] for r in _scores(out / "mtl_all", main, metric[main])],
            "trial": trial_rec["dev_seeds"], "trial_aux": trial_rec["selected"],
            "fg": fg_rec["dev_seeds"], "fg_usage": fg_rec["usage"],
        }  # fmt: skip
    atomic_write_json(out / "gradts.json", rows)
    atomic_write_text(out / "gradts.md", gradts_table(rows))
    return statistics.fmean(statistics.fmean(r["fg"]) for r in rows.values())
