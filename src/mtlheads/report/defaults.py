"""What a run changed: the config keys whose values differ from the default config of the same kind of run.

The default is composed by Hydra from the package's ``conf/`` with only the run's config-group choices that
its label already names (``mode``, ``taskset``, ``encoder``, ``heads``) and its ``data_dir`` (so paths
derived from it line up). Every other key that differs is a difference: a preset's or the command line's
``optim.gate_lr=0.01``, ``trainer.max_epochs=2``, ``balancer=moving_average``. ``data_dir`` itself is
reported when it is not the default (the shipped excerpt). Keys that only tell runs apart (seed, dirs, run
name, logger, resume, hydra) and keys that a run's older code did not have are left out.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

IGNORED_TOP = {"seed", "out_dir", "run_name", "ckpt", "hydra", "logger", "resume", "ewt_dir", "glue_dir"}
COSMETIC = {("trainer", "enable_progress_bar")}  # changes no number
_ABSENT = object()


def _conf_dir() -> Path:
    from mtlheads.launch.resolvers import CONF_DIR

    return Path(CONF_DIR)


def _taskset_tasks(path: Path) -> list[str]:
    """The tasks a ``conf/taskset/*.yaml`` composes (its ``/task@tasks.<name>`` defaults), in order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = [e for e in data.get("defaults") or [] if isinstance(e, dict)]
    return [str(v) for e in entries for k, v in e.items() if str(k).startswith("/task@tasks.")]


def choices(config: dict) -> tuple[str, ...]:
    """The overrides that compose the default config of the run whose (resolved) config is ``config``."""
    conf = _conf_dir()
    out = []
    mode = (config.get("mode") or {}).get("name")
    if mode and (conf / "mode" / f"{mode}.yaml").is_file():
        out.append(f"mode={mode}")
    tasks = list(config.get("tasks") or {})
    if tasks:
        named = [p.stem for p in sorted((conf / "taskset").glob("*.yaml")) if _taskset_tasks(p) == tasks]
        out.append(f"taskset={named[0]}" if named else "taskset=[" + ",".join(tasks) + "]")
    name = (config.get("encoder") or {}).get("name")
    if name:
        options = [
            p.stem
            for p in sorted((conf / "encoder").glob("*.yaml"))
            if (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("name") == name
        ]
        out += [f"encoder={options[0]}"] if options else ["encoder=auto", f"encoder.name={name}"]
    heads = (config.get("heads") or {}).get("name")
    if heads and mode != "gate" and (conf / "heads" / f"{heads}.yaml").is_file():  # mode=gate picks its own
        out.append(f"heads={heads}")
    if config.get("data_dir") is not None:
        out.append(f"data_dir={config['data_dir']}")
    return tuple(out)


@functools.lru_cache(maxsize=64)
def compose_default(overrides: tuple[str, ...]) -> dict:
    """The package's default config with ``overrides``, resolved, as plain containers."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from mtlheads.launch.resolvers import register_resolvers

    register_resolvers()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (a sweep callback): its loader is ours
        cfg = compose(config_name="config", overrides=list(overrides))
    else:
        with initialize_config_dir(config_dir=str(_conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def _short(value: object) -> str:
    if isinstance(value, dict):
        return str(value["_target_"]).rsplit(".", 1)[-1] if "_target_" in value else "{...}"
    if isinstance(value, list):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _diff(run: object, default: object, path: tuple) -> list[tuple[tuple, object]]:
    """(path, run value) where ``run`` differs from ``default``; mappings are compared key by key."""
    swapped = (
        isinstance(run, dict) and isinstance(default, dict) and default.get("_target_") != run.get("_target_")
    )
    if isinstance(run, dict) and isinstance(default, dict) and not swapped:
        out = []
        for k, v in run.items():
            if path == () and k in IGNORED_TOP:
                continue
            out += _diff(v, default.get(k, _ABSENT), (*path, k))
        return out
    if default is _ABSENT and isinstance(run, dict):  # a whole node the default lacks: its leaves
        return [p for k, v in run.items() for p in _diff(v, _ABSENT, (*path, k))]
    return [] if run == default or path in COSMETIC else [(path, run)]


def _derived_path(path: tuple, value: object, config: dict) -> bool:
    """A task file under the run's own ewt_dir/glue_dir: it follows data_dir, which is reported instead."""
    roots = [str(config[k]) for k in ("ewt_dir", "glue_dir") if config.get(k)]
    return path[:1] == ("tasks",) and isinstance(value, str) and any(value.startswith(r) for r in roots)


def differences(config: dict | None) -> dict[str, str]:
    """``{dotted key: value}`` for every key of ``config`` that differs from its default; ``{}`` for none.

    Raises:
        Exception: whatever Hydra raises when the default cannot be composed (an option this package lacks).
    """
    if not config:
        return {}
    default = compose_default(choices(config))
    found = {}
    if config.get("data_dir") is not None:
        found["data_dir"] = str(config["data_dir"])
    for path, value in _diff(config, default, ()):
        if not _derived_path(path, value, config):
            found[".".join(map(str, path))] = _short(value)
    return found


def safe_differences(config: dict | None) -> dict[str, str]:
    """:func:`differences`, or ``{"?": why}`` when the default cannot be composed (never raises)."""
    try:
        return differences(config)
    except Exception as e:  # a report must still be written for runs of other code versions
        return {"?": f"default config not composed: {' '.join(str(e).split())[:200]}"}


def markdown(report: dict) -> str:
    """The report's ``from_default`` entries as a Markdown list (empty when no row has any)."""
    rows = [r for r in report.get("configurations") or [] if "from_default" in r]
    if not rows:
        return ""
    lines = ["", "## Differences from the default config", ""]
    for r in rows:
        keys = ", ".join(f"`{k}={v}`" for k, v in r["from_default"].items()) or "none"
        label = r["label"].replace("|", "\\|")
        lines.append(f"- {label}: {keys}")
    return "\n".join(lines) + "\n"
