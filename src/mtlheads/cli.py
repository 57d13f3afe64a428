"""The ``mtlheads`` command: a thin Hydra entry point that hands the config to the chosen mode.

How a run ends when something goes wrong (:mod:`mtlheads.errors`): a user error prints one line
``error: ...`` on stderr and exits 1 (2 when the encoder cannot be loaded), an internal error prints its
traceback and exits 1, SIGTERM/SIGINT exit 143/130; ``debug=true`` or ``HYDRA_FULL_ERROR=1`` add the
traceback to user errors. Single runs and multiruns (``-m``) print the same for each failed job.
"""

from __future__ import annotations

import signal
import sys
import traceback
from typing import Any

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from mtlheads import errors
from mtlheads.errors import ConfigError
from mtlheads.launch import jobs
from mtlheads.launch.resolvers import CONF_DIR, register_resolvers, rewrite_encoder_override
from mtlheads.utils.io import trusting
from mtlheads.validate import check_config

# At import, not only in main(): joblib workers import this module to run _main and resolve the job's
# config (its dir names use mtlheads.join) before _main starts.
register_resolvers()

# Config values that cannot be resolved: the user's to fix (a missing key read by our code is a bug).
_UNRESOLVABLE = (InterpolationResolutionError, MissingMandatoryValue)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    try:
        # In a multirun a failed job returns None (failure.json records it); a single run re-raises.
        return jobs.run_job(cfg, _run_mode)
    except Exception as e:
        if not errors.is_user_error(e):
            raise  # a bug: main() prints its traceback
        errors.report(e, debug=errors.debug_requested(cfg))  # one line: the fix is the user's
        sys.exit(errors.exit_status(e))


def _run_mode(cfg: DictConfig) -> Any:
    try:
        OmegaConf.to_container(cfg, resolve=True)  # every interpolation, before any work
        check_config(cfg)
    except _UNRESOLVABLE as e:  # e.g. data_dir=${nope}: a value of the user's that cannot be resolved
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"config key {key}: {config_error_line(e)}", key=key) from e
    with trusting(bool(cfg.get("trust_checkpoint"))):
        return hydra.utils.instantiate(cfg.mode.run)(cfg)


def main() -> None:
    register_resolvers()
    sys.argv = [sys.argv[0], *rewrite_encoder_override(sys.argv[1:])]
    with errors.catch_signals(), errors.hydra_reports_to_us():
        try:
            _main()
        except (KeyboardInterrupt, SystemExit, errors.Interrupted) as e:
            signum = errors.received_signal()
            if signum is None and isinstance(e, KeyboardInterrupt):
                signum = signal.SIGINT
            if signum is None:
                raise  # sys.exit of a user error, or Hydra's own (e.g. --help)
            sys.exit(errors.signal_exit_status(signum))
        except Exception as e:  # raised outside any job: Hydra composing the config, or a bug
            _report_outside_job(e)
            sys.exit(1)
    if jobs.sweep_failed():  # the failed jobs are logged and listed in <sweep dir>/failures.json
        sys.exit(1)


def _report_outside_job(exc: Exception) -> None:
    """A config Hydra could not compose is the user's to fix: one line; anything else: the traceback."""
    config = isinstance(exc, (HydraException, OmegaConfBaseException))
    if not config or errors.debug_requested():
        traceback.print_exception(exc, file=sys.stderr)
    if config:
        print(f"error: {config_error_line(exc)}", file=sys.stderr, flush=True)


def config_error_line(exc: BaseException) -> str:
    """One line from Hydra's or OmegaConf's multi-line message (options listed, search path left out)."""
    text = str(exc)
    if "Interpolation key 'tasks' not found" in text:  # 'taskset=[]' or ~taskset: no task set at all
        return "taskset chooses no task: choose a task set, e.g. taskset=pos or taskset=ewt3"
    lines, options = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        if line.startswith("Config search path"):
            break
        if line.endswith(":") and lines:  # a heading of a list (e.g. "Available options in 'taskset':")
            options.append(line)
        elif options:
            options.append(line)
        else:
            lines.append(line)
    head = " ".join(lines)
    if options:
        head += f" ({options[0]} {', '.join(options[1:])})"
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).splitlines():
        head += f": {str(cause).splitlines()[0]}"
    return head


if __name__ == "__main__":
    # `python -m mtlheads.cli`: run the importable module's main, not __main__'s, so that the functions
    # Hydra hands to joblib workers are pickled by reference to mtlheads.cli (which registers resolvers).
    from mtlheads import cli

    cli.main()
