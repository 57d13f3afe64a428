"""What every benchmark script shares: the report header, machine load, spreads, interleaving, peak RSS.

Two ways to compare variants on a noisy machine:

* **in one process, step by step** (``round_orders`` + ``spread`` + ``ratios``): every round runs one step
  (or one short stretch) of each variant, the order reversed every other round, so load changes hit every
  variant alike; the per-round ratios show how much the noise moved. Use it whenever the variants can share
  a process (gate kinds, decoders, batching schemes over one model).
* **child processes** (``run_child`` + ``interleaved``): each variant in its own interpreter, so the peak
  RSS it reports is its own. Timings from separate processes are only as steady as the machine; keep them
  for memory, or for variants that cannot share a process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path


def peak_rss_mib() -> dict[str, float]:
    """ru_maxrss (KiB on Linux) and VmHWM: they agree unless the parent's peak leaked in through exec."""
    status = Path("/proc/self/status").read_text()
    hwm = int(status.split("VmHWM:")[1].split()[0]) if "VmHWM:" in status else 0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_rss_mib": maxrss / 1024, "vmhwm_mib": hwm / 1024}


def setup_torch(threads: int, seed: int):
    """Imports torch with ``threads`` intra-op threads and a fixed seed (in a child)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return torch


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def flags(args: argparse.Namespace, names: Iterable[str]) -> list[str]:
    """``--some-name value`` for each attribute ``some_name`` of ``args`` (passed on to a child)."""
    return [x for n in names for x in (f"--{n.replace('_', '-')}", str(getattr(args, n)))]


def run_child(script: str, child_flags: list[str], *, threads: int, label: str) -> dict:
    """Runs ``script child_flags`` in a fresh interpreter and returns the JSON of its last stdout line."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, str(Path(script).resolve()), *child_flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{label} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("peak_rss_mib", 0) > result.get("vmhwm_mib", float("inf")) + 1:
        print(f"warning: {label}: ru_maxrss > VmHWM (the parent's peak leaked in)", file=sys.stderr)
    return result


def interleaved(variants: Iterable, repeats: int, run: Callable[[object], dict], tag: str = "") -> dict:
    """``{variant: [result per round]}``, running the variants in turn for ``repeats`` rounds."""
    variants = list(variants)
    runs: dict = {v: [] for v in variants}
    for rep in range(repeats):
        for v in variants:
            runs[v].append(run(v))
            print(f"  [{tag}{rep + 1}/{repeats}] {v}: {json.dumps(runs[v][-1])}", file=sys.stderr)
    return runs


def loadavg() -> list[float]:
    """The 1/5/15-minute load averages (``/proc/loadavg``): how busy the machine was."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def round_orders(variants: Iterable, rounds: int) -> list[list]:
    """Per round the order to run ``variants`` in: as given in even rounds, reversed in odd ones, so no
    variant always runs right after the same other one (or first, on a warm cache)."""
    variants = list(variants)
    return [variants if r % 2 == 0 else variants[::-1] for r in range(rounds)]


def spread(values: Iterable[float]) -> dict[str, float]:
    """``{"min", "median", "max"}`` of ``values``."""
    xs = sorted(values)
    return {"min": xs[0], "median": statistics.median(xs), "max": xs[-1]} if xs else {}


def ratios(values: Iterable[float], base: Iterable[float]) -> list[float]:
    """Per-round ratios ``value / base`` (the rounds paired in order)."""
    return [v / b for v, b in zip(values, base, strict=True)]


def fmt_spread(s: dict[str, float], digits: int = 2, unit: str = "") -> str:
    """``median [min-max]`` of a :func:`spread`."""
    return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def write_report(out: str | Path, report: dict, table: str) -> Path:
    """Writes ``report`` as JSON at ``out`` and ``table`` (with the command and load) next to it as .txt."""
    from mtlheads.utils.io import atomic_write_json

    out = Path(out)
    text = f"$ {report.get('command', '')}\n{machine_line(report)}\n\n{table.rstrip()}\n"
    report = {**report, "table": table}
    path = atomic_write_json(out, report)
    out.with_suffix(".txt").write_text(text)
    return Path(path)


def machine_line(report: dict) -> str:
    """One line: date, CPU, cores, threads, versions and the load before/after."""
    return (
        f"{report.get('date', '')}, {report.get('cpu', '')} ({report.get('cores', '?')} cores), "
        f"{report.get('threads')} thread(s), torch {report.get('torch')}, transformers "
        f"{report.get('transformers')}; load avg before {report.get('load_before')}, after "
        f"{report.get('load_after')}"
    )


def require_ewt(relative: str) -> Path:
    """The data root holding ``ewt/<relative>`` (``MTLHEADS_DATA_DIR`` or ``../shared/data``), or exit."""
    from mtlheads.data import find_data_dir

    data_dir = find_data_dir()
    if data_dir is None or not (data_dir / "ewt" / relative).is_file():
        sys.exit(
            f"EWT not found (data dir: {data_dir}): set MTLHEADS_DATA_DIR to the folder holding ewt/ "
            "(e.g. ../shared/data)"
        )
    return data_dir


def report_header(args: argparse.Namespace, data_dir: Path) -> dict:
    """What every benchmark JSON starts with: the command, the date, the machine and the versions."""
    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "args": vars(args),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "threads": getattr(args, "threads", None),
        "cores": os.cpu_count(),
        "data_dir": str(data_dir),
        "load_before": loadavg(),
    }
