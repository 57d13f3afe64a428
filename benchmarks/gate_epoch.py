"""End to end: a ``mode=gate`` training epoch against the ungated ``mode=stl`` epoch on the same data.

Both variants are the real recipe (``mtlheads.modes.train.run`` on the composed ``conf/``): data, model,
Lightning fit with its dev evaluation, checkpointing, and for the gate the L0 term, the gate optimizer
group and the gate monitor. They alternate in ONE process (order reversed every other round), on the same
POS batches (same seed, ``trainer.limit_train_batches``), so load changes hit both alike. Reported per
variant: the epoch's seconds (train + dev, from ``metrics.json``) and the whole run's wall time
(building, final test included), min/median/max over the rounds, with the per-round gate/stl ratios.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/gate_epoch.py --batches 60 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    fmt_spread,
    loadavg,
    peak_rss_mib,
    ratios,
    report_header,
    require_ewt,
    round_orders,
    setup_torch,
    spread,
    write_report,
)

VARIANTS = {"stl": ["mode=stl"], "gate": ["mode=gate"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=60, help="training batches per epoch (of 197)")
    p.add_argument("--dev-batches", type=float, default=1.0, help="trainer.limit_val_batches")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/gate_epoch.json")
    return p.parse_args(argv)


def run_once(variant: str, args: argparse.Namespace, data_dir: Path, out: Path) -> dict:
    from omegaconf import OmegaConf

    from mtlheads.modes import train
    from mtlheads.report.defaults import compose_default

    overrides = tuple(
        [
            *VARIANTS[variant],
            "taskset=pos",
            f"seed={args.seed}",
            f"data_dir={data_dir}",
            "trainer.max_epochs=1",
            f"+trainer.limit_train_batches={args.batches}",
            f"+trainer.limit_val_batches={args.dev_batches}",
            "trainer.enable_progress_bar=false",
            "logger=none",
            f"out_dir={out}",
        ]
    )
    cfg = OmegaConf.create(compose_default(overrides))  # the composed conf/, as the mtlheads command sees it
    started = time.perf_counter()
    train.run(cfg)
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    return {"epoch_s": metrics["history"][0]["seconds"], "wall_s": wall, "dev": metrics["dev"]["score"]}


def main() -> None:
    args = parse_args()
    setup_torch(args.threads, args.seed)
    data_dir = require_ewt("ud/train.conllu")
    report = report_header(args, data_dir)
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r, order in enumerate(round_orders(VARIANTS, args.rounds)):
            for v in order:
                results[v].append(run_once(v, args, data_dir, Path(tmp) / f"{v}-{r}"))
                print(f"  [round {r + 1}/{args.rounds}] {v}: {json.dumps(results[v][-1])}", file=sys.stderr)
    report.update(load_after=loadavg(), **peak_rss_mib())
    lines = [f"mode=gate vs mode=stl, POS, {args.batches} training batches + dev, {args.rounds} rounds", ""]
    lines.append(f"{'variant':8} {'epoch s (train + dev)':>26} {'run wall s':>26}")
    for v, rs in results.items():
        epoch, wall = spread(x["epoch_s"] for x in rs), spread(x["wall_s"] for x in rs)
        report[v] = {"runs": rs, "epoch_s": epoch, "wall_s": wall}
        lines.append(f"{v:8} {fmt_spread(epoch, 1):>26} {fmt_spread(wall, 1):>26}")
    for key in ("epoch_s", "wall_s"):
        per_round = ratios([x[key] for x in results["gate"]], [x[key] for x in results["stl"]])
        report[f"ratio_{key}"] = {"per_round": per_round, **spread(per_round)}
        lines.append(
            f"gate / stl, {key}: {fmt_spread(spread(per_round), 3, 'x')}; per round "
            + ", ".join(f"{x:.3f}" for x in per_round)
        )
    median = report["ratio_epoch_s"]["median"]
    lines.append(f"epoch ratio {median:.3f}x (target <= 1.05x: {'met' if median <= 1.05 else 'NOT met'})")
    lines.append(f"process peak RSS {report['peak_rss_mib']:.0f} MiB (both variants, one process)")
    table = "\n".join(lines)
    print(table)
    write_report(args.out, report, table)


if __name__ == "__main__":
    main()
