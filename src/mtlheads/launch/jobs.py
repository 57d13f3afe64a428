"""One Hydra job around a mode: skip it when resuming a finished run, record it when it fails.

:func:`run_job` is what ``mtlheads`` calls for every job, single run or multirun, in this process or in a
joblib/submitit worker. A job that raises leaves ``failure.json`` in its output dir::

    {"type": "ValueError", "error": "<str of the exception>", "message": "raised at build.py:47 in ...",
     "time": "...", "overrides": ["taskset=ner", ...], "traceback": "Traceback (most recent call last): ..."}

``type``, ``error`` and ``message`` are what ``mtlheads-report`` prints for a failed run. In a multirun the
job then returns None, so that Hydra's sweeper goes on to the next job (it re-raises a job's exception and
stops the sweep otherwise); :class:`FailureSummary` writes ``failures.json`` into the sweep dir at the end
and :func:`sweep_failed` tells ``mtlheads`` to exit with status 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from mtlheads.utils.io import atomic_write_json

log = logging.getLogger("mtlheads")

FAILURE_FILE, FAILURES_FILE, METRICS_FILE = "failure.json", "failures.json", "metrics.json"
_SKIP_DIRS = {".hydra", ".submitit", "wandb", "checkpoints"}
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")  # set by Lightning

# Set by FailureSummary in the process that ran the sweep; read by mtlheads.cli.main for the exit status.
_failed_sweeps: list[Path] = []


def job_dir(cfg: DictConfig) -> Path:
    """The job's output dir: ``out_dir`` when set, else Hydra's run dir (or sweep subdir)."""
    if cfg.get("out_dir"):
        return Path(cfg.out_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(cfg: DictConfig, run: Callable[[DictConfig], Any]) -> Any:
    """Runs ``run(cfg)`` as one job; see the module docstring for what happens on failure.

    With ``resume=true`` a job whose dir holds ``metrics.json`` is not run again: it returns the dev score
    recorded there. A ``failure.json`` left by an earlier attempt is removed before the job runs, so that
    the report does not list a job that has since succeeded as failed.
    """
    out = job_dir(cfg)
    if cfg.get("resume") and (out / METRICS_FILE).is_file():
        log.info("resume: %s already finished (%s present), skipped", out, METRICS_FILE)
        return _dev_score(out / METRICS_FILE)
    (out / FAILURE_FILE).unlink(missing_ok=True)
    try:
        with _isolated_job():
            return run(cfg)
    except BaseException as e:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        path = record_failure(out, e, overrides)
        # Ctrl-C and exits stop the sweep too; only errors let the next job of a multirun start.
        if in_multirun() and isinstance(e, Exception):
            log.error(
                "job failed, going on with the sweep: %s: %s (traceback: %s)", type(e).__name__, e, path
            )
            return None
        raise


@contextmanager
def _isolated_job() -> Iterator[None]:
    """Lets each job of a multirun start its own DDP processes, as a single run would.

    Lightning's DDP launcher starts ranks > 0 by re-running ``sys.argv`` (plus ``hydra.run.dir``, which
    :func:`mtlheads.launch.rundirs.run_dir` points at the job's dir): from the sweep's command line, every
    rank would run the whole sweep, so ``sys.argv`` reads as this job's command while it runs. The launcher
    also leaves ``LOCAL_RANK`` & co. in the environment and its process group open, which would make the
    next job's trainer skip starting processes and talk to the previous job's finished ranks; both are
    undone after the job.
    """
    if not in_multirun():
        yield
        return
    hydra_cfg = HydraConfig.get()
    skip = ("hydra.mode=", "hydra/launcher=", "hydra.launcher.", "hydra.sweep")
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.lstrip("+~").startswith(skip)]
    argv, env = sys.argv, {k: os.environ.get(k) for k in _DDP_ENV}
    sys.argv = [argv[0], *hydra_cfg.overrides.task, *hydra_overrides]
    try:
        yield
    finally:
        sys.argv = argv
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        dist = getattr(sys.modules.get("torch"), "distributed", None)
        if dist is not None and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def record_failure(out: Path, exc: BaseException, overrides: list[str]) -> Path:
    """Writes ``<out>/failure.json`` (atomically), then marks a W&B run left open as failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    failure = {
        "type": type(exc).__name__,
        "error": str(exc) or repr(exc),
        "message": f"raised at {Path(last.filename).name}:{last.lineno} in {last.name}" if last else "",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "overrides": [str(o) for o in overrides],
        "traceback": "".join(traceback.format_exception(exc)),
    }
    path = out / FAILURE_FILE
    rank = next((os.environ[k] for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK") if k in os.environ), "0")
    # Under DDP each failing rank gets here; rank 0's error (the job's own) wins over the others'
    # (often "connection closed" once rank 0 has gone).
    if rank == "0" or not path.exists():
        if rank != "0":
            failure["rank"] = rank
        atomic_write_json(path, failure)
    try:
        _finish_wandb_failed()
    except Exception as e:  # the failure is recorded already; W&B's own trouble must not hide it
        log.warning("could not close the W&B run: %s", e)
    return path


def _finish_wandb_failed() -> None:
    """Ends a W&B run still open (the mode did not close it) with exit code 1, so it shows as failed."""
    wandb = sys.modules.get("wandb")  # not imported: no run can be open
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1)


def _dev_score(path: Path) -> float | None:
    try:
        score = json.loads(path.read_text(encoding="utf-8")).get("dev", {}).get("score")
    except (OSError, ValueError, AttributeError):
        return None
    return float(score) if isinstance(score, (int, float)) else None


def collect_failures(sweep: Path) -> tuple[list[dict], list[str]]:
    """(failed jobs with their errors, finished job dirs) below a sweep dir, dirs relative to it."""
    failed, finished = [], []
    for dirpath, dirnames, filenames in os.walk(sweep):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        rel = os.path.relpath(dirpath, sweep)
        if FAILURE_FILE in filenames:
            try:
                data = json.loads((Path(dirpath) / FAILURE_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {"type": "unknown", "error": f"{FAILURE_FILE} unreadable"}
            failed.append({"dir": rel, **{k: data.get(k) for k in ("type", "error", "message", "overrides")}})
        elif METRICS_FILE in filenames:
            finished.append(rel)
    return failed, finished


class FailureSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): ``failures.json`` at the end of a sweep."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        failed, finished = collect_failures(sweep)
        summary = {"sweep_dir": str(sweep), "n_failed": len(failed), "failed": failed, "finished": finished}
        atomic_write_json(sweep / FAILURES_FILE, summary)
        if failed:
            _failed_sweeps.append(sweep)
            # Printed, not logged: after the last job, the root logger still writes into that job's log.
            lines = [f"failed: {f['dir']}: {f['type']}: {f['error']}" for f in failed]
            lines.append(
                f"{len(failed)} job(s) failed, {len(finished)} finished; see {sweep / FAILURES_FILE}"
            )
            print("\n".join(lines), file=sys.stderr)


def sweep_failed() -> bool:
    """Whether a sweep run by this process had a failed job."""
    return bool(_failed_sweeps)
