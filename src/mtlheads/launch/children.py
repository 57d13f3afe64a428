"""Jobs that launch jobs: a pipeline mode (tickets, gradts) runs its fine-tunes as ``mtlheads`` commands.

Each child is a fresh ``mtlheads`` process (a single run, or a multirun whose jobs the user's launcher
runs: ``hydra/launcher=joblib|slurm`` pass through), with the parent's own command-line overrides minus
the keys the pipeline sets itself; ``resume=true`` passes through, so a killed pipeline continues.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from hydra.core.hydra_config import HydraConfig


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def parent_overrides(drop: Sequence[str]) -> list[str]:
    """The parent's command-line overrides (task and launcher) except those whose key is or starts with an
    entry of ``drop`` (e.g. ``"mode"`` drops ``mode=tickets`` and ``mode.levels=...``)."""
    if not HydraConfig.initialized():
        raise RuntimeError("a pipeline mode runs from the mtlheads command (it passes its overrides on)")
    hydra_cfg = HydraConfig.get()

    def dropped(o: str) -> bool:
        key = _key(o)
        return any(key == d or key.startswith(d + ".") or key.startswith(d + "/") for d in drop)

    task = [str(o) for o in hydra_cfg.overrides.task if not dropped(str(o))]
    # Of the Hydra overrides only the launcher's: run and sweep dirs are the parent's own.
    launcher = [
        str(o)
        for o in hydra_cfg.overrides.hydra
        if _key(str(o)).startswith(("hydra/launcher", "hydra.launcher"))
    ]
    return task + launcher


def run_child(args: Sequence[str], *, multirun: bool = False) -> int:
    """Runs ``mtlheads [-m] <args>`` to completion (its output goes to this process's); returns its status."""
    command = [sys.executable, "-m", "mtlheads.cli", *(["-m"] if multirun else []), *args]
    return subprocess.run(command, check=False).returncode
