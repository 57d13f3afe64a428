"""The Hydra callback that makes Optuna searches resumable and their results complete.

:class:`OptunaSearch` is ``hydra.callbacks.search``, set by conf/hparams_search/_optuna.yaml:

- before the sweep, it creates the sweep dir (the sweeper opens its sqlite storage there before it launches
  anything) and writes ``multirun.yaml`` into it (Hydra's basic sweeper does that, the Optuna sweeper does
  not; ``resume=true`` finds a sweep dir by it, see :mod:`mtlheads.launch.rundirs`);
- it refuses a trial dir name (``hydra.sweep.subdir``) that does not name every searched key: trial dirs
  are named by their parameters, so that a re-run trial lands in its own earlier dir;
- with ``resume=true`` and a study already in the storage, it marks the trials left running by a killed
  search as failed, queues again (same parameters, so the same dir: an interrupted trial continues from its
  ``last.ckpt``) the failed or interrupted trials whose parameters never completed, sets ``n_trials`` to
  what is left (``n_trials`` minus the completed trials; 0: nothing runs) and offsets the sampler's seed
  by the number of earlier trials (a re-seeded sampler would otherwise propose the first session's
  points again);
- after the sweep, it adds to the sweeper's ``optimization_results.yaml`` the study's trial counts, the
  best trial's dir and overrides, writes that trial's resolved config as ``best_config.yaml`` and writes
  the search report.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from mtlheads.report.search import (
    BEST_CONFIG,
    CONFIG_FILE,
    MULTIRUN_FILE,
    RESULTS_FILE,
    SEARCH,
    Trial,
    _key,
    _number,
    _read_yaml,
    collect_trials,
    searched_keys,
)
from mtlheads.report.search_output import write_search_report
from mtlheads.utils.io import atomic_write_text

log = logging.getLogger("mtlheads")


def _params_key(trial: Any) -> tuple:
    """A trial's parameters, hashable; a queued trial (WAITING) holds them as ``fixed_params`` until asked."""
    params = trial.params or trial.system_attrs.get("fixed_params") or {}
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class OptunaSearch(Callback):
    """Hydra callback (``hydra.callbacks.search`` in conf/hparams_search/_optuna.yaml); see the module doc."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
        keys = searched_keys(config.hydra.sweeper.get("params"), task)  # type: ignore[arg-type]
        subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"])  # type: ignore[index]
        missing = [k for k in keys if "${" + k + "}" not in subdir]
        if missing:
            example = "_".join(["${run_name}", *(f"${{{k}}}" for k in keys)])
            raise ValueError(
                f"hydra.sweep.subdir={subdir} does not name the searched key(s) {missing}, so trials would "
                f"share dirs; name every searched key, e.g. 'hydra.sweep.subdir={example}'"
            )
        atomic_write_text(sweep / MULTIRUN_FILE, OmegaConf.to_yaml(config))
        self._prepare_study(config, sweep)

    def _prepare_study(self, config: DictConfig, sweep: Path) -> None:
        """Resume: queue the unfinished trials again and leave only the remaining ones to the sweeper."""
        sweeper = config.hydra.sweeper
        if not sweeper.get("storage"):
            return
        import optuna
        from optuna.trial import TrialState

        try:
            study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
        except KeyError:  # no such study yet: a fresh search
            return
        trials = study.get_trials(deepcopy=False)
        if not trials:
            return
        if not config.get("resume"):
            raise ValueError(
                f"{sweep} already holds study '{sweeper.study_name}' ({len(trials)} trials): add resume=true "
                "to continue it, or choose another hydra.sweep.dir"
            )
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        interrupted = [t for t in trials if t.state == TrialState.RUNNING]
        waiting = [t for t in trials if t.state == TrialState.WAITING]  # queued by an earlier resume
        # Failed or interrupted parameters that never completed and are not queued yet, once each, in order.
        seen = {_params_key(t) for t in done + waiting}
        retry = []
        for t in sorted(failed + interrupted, key=lambda t: t.number):
            if t.params and _params_key(t) not in seen:
                seen.add(_params_key(t))
                retry.append(dict(t.params))
        remaining = max(int(sweeper.n_trials) - len(done), 0)
        retry = retry[: max(remaining - len(waiting), 0)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for t in interrupted:  # one search per storage: whatever still runs was killed with its process
                study.tell(t.number, state=TrialState.FAIL)
            for params in retry:
                study.enqueue_trial(params)
        with read_write(config.hydra), open_dict(config.hydra):
            sweeper.n_trials = remaining
            if sweeper.get("sampler") is not None and sweeper.sampler.get("seed") is not None:
                sweeper.sampler.seed = int(sweeper.sampler.seed) + len(trials)
        log.info(
            "resume: study %s has %d completed, %d failed and %d interrupted trials; running %d more "
            "(first %d again with their parameters)",
            sweeper.study_name,
            len(done),
            len(failed),
            len(interrupted),
            remaining,
            min(len(retry) + len(waiting), remaining),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        try:
            complete_results(sweep, config)
            markdown, _ = write_search_report(sweep)
        except Exception as e:  # the trials are safe; `mtlheads-report <sweep dir>` can redo this
            log.warning("search report not written: %s: %s", type(e).__name__, e)
            return
        print(f"\n{markdown}\nsearch report: {sweep / (SEARCH + '.md')}")


def complete_results(sweep: Path, config: DictConfig) -> None:
    """Adds the study's counts and the best trial's dir and overrides to ``optimization_results.yaml``,
    and copies that trial's resolved config to ``best_config.yaml``."""
    path = sweep / RESULTS_FILE
    results = _read_yaml(path)
    if not isinstance(results, dict) or "best_params" not in results:
        log.warning("%s missing or without best_params: no best trial to record", path)
        return
    sweeper = config.hydra.sweeper
    if sweeper.get("storage"):
        import optuna

        study = optuna.load_study(study_name=sweeper.study_name, storage=sweeper.storage)
        results["study_name"] = str(sweeper.study_name)
        results["storage"] = str(sweeper.storage)
        results["trials"] = dict(Counter(t.state.name for t in study.get_trials(deepcopy=False)))
    best = _find_trial(collect_trials(sweep), results["best_params"], results.get("best_value"))
    if best is not None:
        results["best_dir"] = best.dir
        results["best_overrides"] = best.argv  # `mtlheads <these>` runs the best trial again
        config_file = sweep / best.dir / CONFIG_FILE
        if config_file.is_file():
            shutil.copyfile(config_file, sweep / f".{BEST_CONFIG}.tmp")
            os.replace(sweep / f".{BEST_CONFIG}.tmp", sweep / BEST_CONFIG)
            results["best_config"] = BEST_CONFIG
    atomic_write_text(path, yaml.safe_dump(results, sort_keys=False))


def _find_trial(trials: list[Trial], params: Mapping, value: float | None) -> Trial | None:
    """The finished trial whose overrides hold ``params`` (numbers compared as floats)."""

    def same(a: Any, b: str | None) -> bool:
        if b is None:
            return False
        x = _number(b)
        return x == float(a) if isinstance(a, (int, float)) and x is not None else str(a) == b

    finished = [t for t in trials if t.status == "finished"]
    matches = [t for t in finished if all(same(v, t.overrides.get(_key(k))) for k, v in params.items())]
    if value is not None and len(matches) > 1:
        matches = [t for t in matches if t.objective == value] or matches
    return matches[0] if matches else None
