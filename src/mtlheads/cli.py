"""The ``mtlheads`` command: a thin Hydra entry point that hands the config to the chosen mode."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from mtlheads import jobs, rundirs
from mtlheads.build import resolve_ewt_dir, resolve_glue_dir, wandb_group
from mtlheads.encoder.load import EncoderNotAvailableError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def register_resolvers() -> None:
    """OmegaConf resolvers used by conf/config.yaml (safe to call twice)."""
    if not OmegaConf.has_resolver("mtlheads.ewt_dir"):
        OmegaConf.register_new_resolver("mtlheads.ewt_dir", resolve_ewt_dir)
    if not OmegaConf.has_resolver("mtlheads.glue_dir"):
        OmegaConf.register_new_resolver("mtlheads.glue_dir", resolve_glue_dir)
    if not OmegaConf.has_resolver("mtlheads.join"):
        OmegaConf.register_new_resolver("mtlheads.join", lambda d: "+".join(d) if d else "none")
    if not OmegaConf.has_resolver("mtlheads.wandb_group"):
        OmegaConf.register_new_resolver("mtlheads.wandb_group", wandb_group)
    # Cached: every job of a sweep must get the dir the sweep chose (see mtlheads.rundirs).
    for name, fn in (("mtlheads.run_dir", rundirs.run_dir), ("mtlheads.sweep_dir", rundirs.sweep_dir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=True)


# At import, not only in main(): joblib workers import this module to run _main and resolve the job's
# config (its dir names use mtlheads.join) before _main starts.
register_resolvers()


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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    try:
        # In a multirun a failed job returns None (failure.json records it); a single run re-raises.
        return jobs.run_job(cfg, lambda c: hydra.utils.instantiate(c.mode.run)(c))
    except EncoderNotAvailableError as e:
        print(f"error: {e}", file=sys.stderr)  # a message, not a traceback: the fix is the user's
        sys.exit(2)


def main() -> None:
    register_resolvers()
    sys.argv = [sys.argv[0], *rewrite_encoder_override(sys.argv[1:])]
    _main()
    if jobs.sweep_failed():  # the failed jobs are logged and listed in <sweep dir>/failures.json
        sys.exit(1)


if __name__ == "__main__":
    # `python -m mtlheads.cli`: run the importable module's main, not __main__'s, so that the functions
    # Hydra hands to joblib workers are pickled by reference to mtlheads.cli (which registers resolvers).
    from mtlheads import cli

    cli.main()
