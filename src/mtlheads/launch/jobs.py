"""One Hydra job around a mode: skip it when resuming a finished run, record it when it fails.

:func:`run_job` is what ``mtlheads`` calls for every job, single run or multirun, in this process or in a
joblib/submitit worker. A job that raises leaves ``failure.json`` in its output dir::

    {"type": "ValueError", "error": "<str of the exception>", "message": "raised at build.py:47 in ...",
     "time": "...", "overrides": ["taskset=ner", ...], "traceback": "Traceback (most recent call last): ..."}

``type``, ``error`` and ``message`` are what ``mtlheads-report`` prints for a failed run; ``user_error``
says whether the error is the user's to fix (:mod:`mtlheads.errors`; ``type`` is then the built-in type
the error has always been reported as, e.g. ``ValueError`` for a bad config value). The traceback also goes
to the run's log files. In a multirun the job then returns None, so that Hydra's sweeper goes on to the next
job (it re-raises a job's exception and stops the sweep otherwise), after printing what a single run would
print (one line for a user error, the traceback for a bug); :class:`FailureSummary` writes
``failures.json`` into the sweep dir at the end and :func:`sweep_failed` tells ``mtlheads`` to exit with
status 1. A job stopped by SIGTERM/SIGINT says which checkpoint ``resume=true`` continues from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
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
from omegaconf import DictConfig, OmegaConf

from mtlheads import errors
from mtlheads.utils.io import atomic_write_json

log = logging.getLogger("mtlheads")

FAILURE_FILE, FAILURES_FILE, METRICS_FILE = "failure.json", "failures.json", "metrics.json"
# mtlheads.checkpoint's CHECKPOINT_DIR / LAST, spelled out: launch sits below the checkpoint layer.
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
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
    with contextlib.suppress(OSError):  # an out_dir that cannot exist is the job's error to report
        (out / FAILURE_FILE).unlink(missing_ok=True)
    try:
        with _isolated_job():
            return run(cfg)
    except BaseException as e:
        path = record_failure(out, e, _task_overrides())
        _log_traceback(e)
        if errors.received_signal() is not None:
            _say_interrupted(out, errors.received_signal())
        # Ctrl-C and exits stop the sweep too; only errors let the next job of a multirun start.
        elif in_multirun() and isinstance(e, Exception):
            errors.report(e, debug=errors.debug_requested(cfg))
            log.info("job failed, going on with the sweep (failure recorded in %s)", path)
            return None
        raise


def _task_overrides() -> list[str]:
    """The job's command-line overrides as typed (``data_dir=${x}`` is text here, not an interpolation)."""
    if not HydraConfig.initialized():
        return []
    return [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)]


def _log_traceback(exc: BaseException) -> None:
    """Writes the traceback to the job's log files only (Hydra's ``<job>.log``): the terminal gets one line
    for a user error, and a bug's traceback is printed by whoever reports it."""
    record = logging.LogRecord(
        log.name, logging.ERROR, __file__, 0, "job failed: %s", (errors.one_line(exc),), None
    )
    record.exc_info = (type(exc), exc, exc.__traceback__)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _say_interrupted(out: Path, signum: int) -> None:
    """One line: the job was stopped, and what ``resume=true`` will continue from."""
    last = out / LAST_CHECKPOINT
    saved = f"{last} holds the progress saved so far" if last.is_file() else "no checkpoint was saved yet"
    print(
        f"interrupted by {signal.Signals(signum).name}: {saved}; run the same command with resume=true "
        "to continue",
        file=sys.stderr,
        flush=True,
    )


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


def record_failure(out: Path, exc: BaseException, overrides: list[str]) -> Path | None:
    """Writes ``<out>/failure.json`` (atomically), then marks a W&B run left open as failed.

    Returns:
        The file written, or None when it could not be (a full disk, an out_dir that cannot exist): the
        error being recorded is the one to report, not this one.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    signum = errors.received_signal()
    interrupted = signum is not None and not isinstance(exc, Exception)
    failure = {
        "type": "Interrupted" if interrupted else errors.failure_type(exc),
        "error": f"stopped by {signal.Signals(signum).name}" if interrupted else str(exc) or repr(exc),
        "user_error": errors.is_user_error(exc),
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
        try:
            atomic_write_json(path, failure)
        except OSError as e:
            log.warning("could not write %s: %s", path, errors.one_line(e))
            path = None
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
