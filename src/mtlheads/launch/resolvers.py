"""Where the configs live and the OmegaConf resolvers ``conf/config.yaml`` uses (``${mtlheads.*:...}``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

import mtlheads.conf
from mtlheads.launch import rundirs

# The package ``mtlheads.conf``: the top-level conf/ in a checkout, a copy inside an installed wheel.
CONF_DIR = str(Path(mtlheads.conf.__file__).resolve().parent)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # the date level of Hydra's default dirs


def register_resolvers() -> None:
    """Registers every ``mtlheads.*`` resolver (safe to call twice)."""
    plain = {
        "mtlheads.ewt_dir": resolve_ewt_dir,
        "mtlheads.glue_dir": resolve_glue_dir,
        "mtlheads.join": lambda d: "+".join(d) if d else "none",
        "mtlheads.wandb_group": wandb_group,
    }
    for name, fn in plain.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    # Cached: every job of a sweep must get the dir the sweep chose (see mtlheads.launch.rundirs).
    for name, fn in (("mtlheads.run_dir", rundirs.run_dir), ("mtlheads.sweep_dir", rundirs.sweep_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


def rewrite_encoder_override(argv: list[str]) -> list[str]:
    """``encoder=<hub name or path>`` with no config of that name -> ``encoder=auto encoder.name=<...>``."""
    known = {p.stem for p in (Path(CONF_DIR) / "encoder").glob("*.yaml")}
    out = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key == "encoder" and value and value not in known and "," not in value:
            out += ["encoder=auto", f"encoder.name={value}"]
        else:
            out.append(arg)
    return out


def wandb_group(fallback: str) -> str:
    """The W&B group of a run (resolver ``mtlheads.wandb_group``, used by conf/logger/wandb.yaml).

    The experiment chosen (``experiment=ewt_full``), else for a multirun its sweep dir (``<date>_<time>``
    for the default ``multirun/<date>/<time>``), else ``fallback`` (mode and task set).
    """
    if not HydraConfig.initialized():  # composed outside a Hydra app, e.g. in tests
        return fallback
    hydra_cfg = HydraConfig.get()
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if experiment:
        return str(experiment)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = Path(str(hydra_cfg.sweep.dir))
        return f"{sweep.parent.name}_{sweep.name}" if _DAY.fullmatch(sweep.parent.name) else sweep.name
    return fallback


def default_ewt_dir() -> Path:
    """The EWT excerpt shipped inside the package."""
    return Path(__file__).resolve().parents[1] / "resources" / "ewt"


def resolve_ewt_dir(data_dir: str | None) -> str:
    """``data_dir`` may be the parent of ``ewt/`` (like ../shared/data) or the ewt folder itself."""
    return _resolve_subdir(data_dir, "ewt")


def resolve_glue_dir(data_dir: str | None) -> str:
    """``data_dir`` may be the parent of ``glue/`` or the glue folder itself (no GLUE data is shipped)."""
    return _resolve_subdir(data_dir, "glue")


def _resolve_subdir(data_dir: str | None, name: str) -> str:
    if data_dir is None:
        return str(default_ewt_dir().parent / name)
    root = Path(os.path.expanduser(str(data_dir)))
    return str(root / name if (root / name).is_dir() else root)
