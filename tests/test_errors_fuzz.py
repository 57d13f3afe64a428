"""The hostile-user fuzz corpus (issue 19): every bad input ends in one clear line, and nothing is lost.

Each case of ``tests/fuzz/cases.py`` (CoNLL-U, IOB2, CoNLL-2012, GLUE TSV, configs, checkpoints, disks,
signals) runs ``mtlheads`` on its own 40-sentence copy of the shipped EWT excerpt with a tiny random encoder
and asserts: the exit status; one ``error:`` line on stderr naming the file:line or the config key=value
(each job's line in a multirun); no traceback on the terminal; no metrics.json written; the files of an
earlier run in the same out_dir untouched; for errors inside a job, failure.json and the log hold the
traceback. Most cases run in this process (well under a second each); signals and two checks of the real
terminal run ``mtlheads`` as a process.

Measuring (docs/errors.md): with ``MTLHEADS_FUZZ_RECORD=<file.jsonl>`` the cases record their verdict
(clear / unclear / traceback / silently accepted, see :func:`fuzz.harness.classify`) instead of asserting;
``python tests/fuzz/verdicts.py <file.jsonl>`` counts them. Run against older code with
``PYTHONPATH=<old tree>/src``. The 76 cases on the code before issue 19 (fb76438): 0 clear, 4 unclear,
51 traceback, 21 silently accepted; after: 76 clear.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from fuzz.cases import CASES
from fuzz.harness import Ctx, classify, command, make_template, run_and_signal, run_in_process, run_process

RECORD = os.environ.get("MTLHEADS_FUZZ_RECORD")


@pytest.fixture(scope="session")
def fuzz_template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("fuzz_data"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_bert_dir, fuzz_template):
    """A tiny POS model trained on the template data, keeping last.ckpt (for the checkpoint cases)."""
    from conftest import compose_config

    from mtlheads.modes import train

    out = tmp_path_factory.mktemp("trained")
    cfg = compose_config(
        [
            "mode=stl",
            "taskset=pos",
            f"encoder.name={tiny_bert_dir}",
            "trainer=smoke",
            "logger=none",
            f"data_dir={fuzz_template}",
            f"out_dir={out}",
            "checkpoint.keep_last=true",
        ]
    )
    train.run(cfg)
    return out


def _describe(outcome) -> str:
    return (
        f"exit {outcome.code}\n--- stderr ---\n{outcome.err[-3000:]}\n--- stdout ---\n{outcome.out[-2000:]}"
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_ends_in_one_clear_line(
    case, tmp_path, fuzz_template, trained_run, tiny_bert_dir, capfd, monkeypatch
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    ctx = Ctx(tmp_path, fuzz_template, tiny_bert_dir, trained_run)
    ctx.plant_earlier(metrics=case.earlier_metrics)
    overrides, where = case.setup(ctx)
    argv = command(ctx, overrides, multirun=case.multirun)
    if case.process == "in":
        if case.patch:
            case.patch(ctx, monkeypatch)
        outcome = run_in_process(ctx, argv, capfd, monkeypatch, case.rewrites)
        monkeypatch.undo()
    elif case.process == "cli":
        outcome = run_process(ctx, argv, case.rewrites)
    else:
        outcome = run_and_signal(ctx, argv, case.signum)
    verdict = classify(outcome, where, multirun=case.multirun)
    code_ran = (tmp_path / "pwned").exists()  # checkpoint_runs_code_on_load's payload

    if RECORD:
        lines = outcome.err_lines
        with open(RECORD, "a") as f:
            entry = {"case": case.name, "kind": case.kind, "verdict": verdict, "code": outcome.code}
            entry.update(last=lines[-1][:300] if lines else "", ran_code=code_ran)
            f.write(json.dumps(entry) + "\n")
        return

    assert verdict == "clear", f"{verdict}; expected {where} on one line\n{_describe(outcome)}"
    assert outcome.code == case.code, _describe(outcome)
    assert "Traceback" not in outcome.terminal, _describe(outcome)
    lines = outcome.err_lines
    if case.process == "signal":
        assert lines[-1].startswith(f"interrupted by {signal.Signals(case.signum).name}:"), _describe(outcome)
        assert outcome.failure["type"] == "Interrupted"
    else:
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == (2 if case.multirun else 1), _describe(outcome)  # one per job
        if not case.multirun:
            assert lines[-1] == errors[0]
    assert not outcome.metrics_written
    assert outcome.earlier_intact
    assert not code_ran
    if case.in_job and case.failure_json and not case.multirun and case.process != "signal":
        assert outcome.failure is not None and outcome.failure["user_error"] is True
        assert "Traceback (most recent call last)" in outcome.log  # the traceback went to the log

    if case.signum == signal.SIGTERM:  # the same command with resume=true continues and finishes
        resumed = command(ctx, [*overrides, "trainer.max_epochs=2", "resume=true"])
        done = run_process(ctx, resumed)
        assert done.code == 0, _describe(done)
        metrics = json.loads((ctx.out / "metrics.json").read_text())
        assert [h["epoch"] for h in metrics["history"]] == [0, 1]


def test_the_corpus_covers_every_kind_of_input():
    kinds = {c.kind for c in CASES}
    assert kinds == {"conllu", "iob2", "conll2012", "glue", "config", "checkpoint", "disk", "signal"}
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
    assert sum(c.process != "in" for c in CASES) <= 4  # real processes cost seconds each
