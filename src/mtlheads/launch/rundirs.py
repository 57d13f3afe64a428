"""Where a run or a sweep writes: a fresh timestamped dir, or with ``resume=true`` the newest earlier one.

conf/config.yaml sets ``hydra.run.dir`` and ``hydra.sweep.dir`` through the resolvers below (registered by
:func:`mtlheads.launch.resolvers.register_resolvers`), so that re-running a command with ``resume=true``
lands in the dir of the run that crashed without the user having to find it:

- a single run resumes the newest ``outputs/<date>/<time>_<run_name>`` dir;
- a multirun resumes the newest ``multirun/<date>/<time>`` dir whose ``multirun.yaml`` was launched with
  the same task overrides (``resume`` itself ignored, order kept: it decides the job numbers).

With nothing to resume, both return the fresh dir they were given. Both are registered with
``use_cache=True``: Hydra copies the resolver cache of the sweep config into every job's config (also in
joblib and submitit workers), so each job sees the dir the sweep chose instead of searching again with
its own, narrower overrides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

log = logging.getLogger("mtlheads")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = r"\d{2}-\d{2}-\d{2}(?:-\d+)?"  # %H-%M-%S, optionally -%f (single runs)


def run_dir(resume: bool, root: str, run_name: str, fresh: str) -> str:
    """``hydra.run.dir``: the newest ``<root>/<date>/<time>_<run_name>`` when resuming, else ``fresh``.

    In a multirun job: the job's own dir. Hydra does not use ``hydra.run.dir`` there, but Lightning's DDP
    launcher does: it starts ranks > 0 as single runs with ``hydra.run.dir=<this>``, and they must work in
    the dir of the job they belong to.
    """
    job = _multirun_job_dir()
    if job is not None:
        return job
    if not resume:
        return fresh
    name = re.compile(rf"{_TIME}_{re.escape(str(run_name))}")
    found = _newest(d for d in _dated_dirs(root) if name.fullmatch(d.name))
    if found is None:
        log.info("resume=true: no earlier run named %s under %s/, starting afresh", run_name, root)
        return fresh
    return str(found)


def sweep_dir(resume: bool, root: str, task_overrides: Iterable[str], fresh: str) -> str:
    """``hydra.sweep.dir``: when resuming, the newest ``<root>/<date>/<time>`` sweep with these overrides."""
    if not resume:
        return fresh
    wanted = _comparable(task_overrides)
    time = re.compile(_TIME)
    candidates = (d for d in _dated_dirs(root) if time.fullmatch(d.name))
    found = _newest(d for d in candidates if _sweep_overrides(d) == wanted)
    if found is None:
        log.info("resume=true: no earlier sweep with overrides %s under %s/, starting afresh", wanted, root)
        return fresh
    return str(found)


def _multirun_job_dir() -> str | None:
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    # None (or ???) in the process that runs the sweep: only a job's config has its output dir.
    return OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None, throw_on_missing=False)


def _dated_dirs(root: str) -> list[Path]:
    """``<root>/<YYYY-MM-DD>/*`` directories."""
    base = Path(root)
    if not base.is_dir():
        return []
    return [d for day in base.iterdir() if _DATE.fullmatch(day.name) and day.is_dir() for d in day.iterdir()]


def _newest(dirs: Iterable[Path]) -> Path | None:
    # Names are zero-padded dates and times, so the lexicographic maximum is the latest start; unlike
    # mtimes, it does not change when an old run is resumed or read.
    return max((d for d in dirs if d.is_dir()), key=lambda d: (d.parent.name, d.name), default=None)


def _comparable(overrides: Iterable[str]) -> list[str]:
    """Task overrides without ``resume`` (``resume=true`` must match the run that had none)."""
    if OmegaConf.is_config(overrides):
        # As typed: iterating would resolve an override like `x=a_${seed}`, which multirun.yaml keeps as is.
        overrides = OmegaConf.to_container(overrides, resolve=False)
    return [str(o) for o in overrides if str(o).split("=", 1)[0].lstrip("+~") != "resume"]


def _sweep_overrides(sweep: Path) -> list[str] | None:
    """The task overrides a sweep was launched with, from its ``multirun.yaml`` (None if unreadable)."""
    try:
        saved = yaml.safe_load((sweep / "multirun.yaml").read_text(encoding="utf-8"))
        return _comparable(saved["hydra"]["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
