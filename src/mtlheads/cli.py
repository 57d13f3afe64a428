"""The ``mtlheads`` command: a thin Hydra entry point that hands the config to the chosen mode."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mtlheads.encoder.load import EncoderNotAvailableError
from mtlheads.launch import jobs
from mtlheads.launch.resolvers import CONF_DIR, register_resolvers, rewrite_encoder_override

# At import, not only in main(): joblib workers import this module to run _main and resolve the job's
# config (its dir names use mtlheads.join) before _main starts.
register_resolvers()


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
