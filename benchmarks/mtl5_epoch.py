"""The full-EWT MTL-5 epoch before and after the speed work, same command, side by side on one machine.

Both jobs start together, one thread each, so each runs beside the other for the whole of its first epoch
(same machine state). ``before`` is the code of an older commit checked out as a git worktree (its own
``conf/``; run through ``PYTHONPATH=<worktree>/src``), ``after`` the installed code. Reported: the first
epoch's seconds (training + dev evaluation, from each run's ``metrics.json``), wall time and peak RSS
(``/usr/bin/time -v``), and the precision each ran at.

    git worktree add /tmp/before bbb2e95 && ln -s /tmp/before/conf /tmp/before/src/mtlheads/conf
    python benchmarks/mtl5_epoch.py --before-src /tmp/before/src --run        # ~30 min on 2 cores
    python benchmarks/mtl5_epoch.py --before-dir B --after-dir A --before-log LB --after-log LA  # summarise
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from pathlib import Path

from harness import loadavg, report_header, require_ewt, write_report

COMMAND = "mode=mtl taskset=ewt5 seed=2 data_dir={data} trainer.enable_progress_bar=false logger=csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before-src", help="src/ of the older checkout (with its conf linked in)")
    p.add_argument("--run", action="store_true", help="run both jobs now (else summarise finished ones)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--before-dir", default="runs/mtl5_speed/before")
    p.add_argument("--after-dir", default="runs/mtl5_speed/after")
    p.add_argument("--before-log", default="runs/mtl5_speed/before.log")
    p.add_argument("--after-log", default="runs/mtl5_speed/after.log")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/mtl5_epoch.json")
    return p.parse_args(argv)


def start(args: argparse.Namespace, data_dir: Path, which: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WANDB_MODE": "offline"}
    if which == "before":
        env["PYTHONPATH"] = args.before_src
    out = getattr(args, f"{which}_dir")
    cmd = ["/usr/bin/time", "-v", "python", "-m", "mtlheads.cli", *COMMAND.format(data=data_dir).split()]
    cmd += [f"trainer.max_epochs={args.epochs}", f"out_dir={out}"]
    log = Path(getattr(args, f"{which}_log"))
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def summary(run_dir: str, log: str) -> dict:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    config = (Path(run_dir) / "config.yaml").read_text()
    text = Path(log).read_text()
    precision = re.search(r"^\s+precision: (\S+)", config, re.M)
    return {
        "epoch_s": metrics["history"][0]["seconds"],
        "dev_score": metrics["history"][0]["score"],
        "wall": re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1),
        "peak_rss_mib": int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024,
        "precision": precision.group(1) if precision else "32-true (Lightning's default)",
        "command": re.search(r'Command being timed: "(.*)"', text).group(1),
    }


def main() -> None:
    args = parse_args()
    data_dir = require_ewt("ud/train.conllu")
    report = report_header(args, data_dir)
    if args.run:
        jobs = [start(args, data_dir, w) for w in ("before", "after")]
        if any(j.wait() for j in jobs):
            raise SystemExit(f"a job failed: see {args.before_log} and {args.after_log}")
    report["load_after"] = loadavg()
    before, after = summary(args.before_dir, args.before_log), summary(args.after_dir, args.after_log)
    report.update(before=before, after=after, speedup=before["epoch_s"] / after["epoch_s"])
    lines = ["Full-EWT MTL-5, first epoch (training + dev), the two jobs side by side, one thread each", ""]
    lines.append(f"{'':7} {'epoch s':>8} {'peak RSS':>10} {'wall':>9}  precision")
    for name, r in (("before", before), ("after", after)):
        lines.append(
            f"{name:7} {r['epoch_s']:8.1f} {r['peak_rss_mib']:7.0f} MiB {r['wall']:>9}  {r['precision']}"
        )
    lines.append(f"speedup (before / after epoch seconds): {report['speedup']:.2f}x")
    table = "\n".join(lines)
    print(table)
    write_report(args.out, report, table)


if __name__ == "__main__":
    main()
