"""Runs one fuzz case as a user would meet it, and says what the user saw.

A case gets a fresh dir: ``data/`` (40-sentence copies of every EWT layer of the shipped excerpt, plus a
tiny GLUE RTE), ``run/`` (the out_dir, holding the files of an earlier finished run) and ``hydra/`` (Hydra's
run dir, where the log goes). It runs ``mtlheads`` with ``trainer=smoke logger=none`` and a tiny random
encoder, in this process through ``mtlheads.cli.main`` (well under a second) or as a real process (a few
seconds: kept for signals and a check of the real terminal).

Only stable entry points are used (``mtlheads.cli.main``, ``python -m mtlheads.cli``, ``os.fdopen`` for the
full disk), so the same corpus runs against older code (``PYTHONPATH=<old tree>/src``) to measure it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXCERPT = REPO / "src" / "mtlheads" / "resources" / "ewt"
N_SENTENCES = 40  # a document boundary in all three splits of the excerpt
SPLITS = ("train", "dev", "test")
LAYERS = {"ud": "conllu", "ner": "iob2", "conll2012": "gold_conll"}

VERDICTS = ("clear", "unclear", "traceback", "silently accepted")


# ---- data ------------------------------------------------------------------------------------------


def _blocks(text: str) -> list[list[str]]:
    """Blank-line separated blocks of lines (CoNLL-U, IOB2)."""
    blocks, block = [], []
    for line in text.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def _first_conll2012(text: str, n: int) -> str:
    """The whole documents holding the first ``n`` sentences of a CoNLL-2012 file."""
    out, sentences, in_sentence = [], 0, False
    for line in text.splitlines():
        out.append(line)
        if line.startswith("#end document") and sentences >= n:
            break
        if line.strip() and not line.startswith("#"):
            in_sentence = True
        elif not line.strip() and in_sentence:
            sentences, in_sentence = sentences + 1, False
    return "\n".join(out) + "\n"


RTE_ROWS = [
    ("A man is playing a guitar.", "A man plays music.", "entailment"),
    ("The cat sleeps on the mat.", "A dog barks loudly.", "not_entailment"),
    ("She bought three apples.", "She bought fruit.", "entailment"),
    ("The train left at noon.", "The train never left.", "not_entailment"),
]


def make_template(root: Path) -> Path:
    """``root/ewt/{ud,ner,conll2012}/{train,dev,test}`` (40 sentences each) and ``root/glue/RTE/*.tsv``."""
    for layer, ext in LAYERS.items():
        (root / "ewt" / layer).mkdir(parents=True)
        for split in SPLITS:
            text = (EXCERPT / layer / f"{split}.{ext}").read_text(encoding="utf-8")
            if layer == "conll2012":
                kept = _first_conll2012(text, N_SENTENCES)
            else:
                kept = "".join("\n".join(b) + "\n\n" for b in _blocks(text)[:N_SENTENCES])
            (root / "ewt" / layer / f"{split}.{ext}").write_text(kept, encoding="utf-8")
    (root / "glue" / "RTE").mkdir(parents=True)
    for split, times in (("train", 4), ("dev", 2)):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        rows += [f"{i}\t{a}\t{b}\t{y}" for i, (a, b, y) in enumerate(RTE_ROWS * times)]
        (root / "glue" / "RTE" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


# ---- one case's dir ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the user saw, and what the run left behind."""

    code: int
    out: str
    err: str
    metrics_written: bool
    earlier_intact: bool
    log: str
    failure: dict | None

    @property
    def terminal(self) -> str:
        return self.out + self.err

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Ctx:
    """A case's dir: the data copy, the out_dir with an earlier run's files, paths and edit helpers."""

    def __init__(self, root: Path, template: Path, tiny: str, trained: Path):
        self.root, self.tiny, self.trained = root, tiny, trained
        self.data = root / "data"
        shutil.copytree(template, self.data)
        self.out = root / "run"
        self.hydra = root / "hydra"
        self.earlier: dict[str, str] = {}

    # -- the earlier run ---------------------------------------------------------------------------
    def plant_earlier(self, *, metrics: bool = True) -> None:
        """Files an earlier finished run left in the out_dir (a failed run must not touch them)."""
        (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.trained / "checkpoints" / "best.ckpt", self.out / "checkpoints" / "best.ckpt")
        (self.out / "notes.txt").write_text("results of an earlier run\n")
        if metrics:
            (self.out / "metrics.json").write_text(json.dumps({"dev": {"score": 0.5}, "earlier": True}))
        self.earlier = {str(p.relative_to(self.out)): _digest(p) for p in self.out.rglob("*") if p.is_file()}

    # -- paths -------------------------------------------------------------------------------------
    def ewt(self, layer: str, split: str = "dev") -> Path:
        return self.data / "ewt" / layer / f"{split}.{LAYERS[layer]}"

    def rte(self, split: str = "dev") -> Path:
        return self.data / "glue" / "RTE" / f"{split}.tsv"

    def ckpt(self, name: str = "best.ckpt") -> Path:
        """A copy of the trained tiny POS model's checkpoint, free to damage."""
        path = self.root / "ckpt" / name
        path.parent.mkdir(exist_ok=True)
        shutil.copy(self.trained / "checkpoints" / "best.ckpt", path)
        return path

    # -- edits -------------------------------------------------------------------------------------
    @staticmethod
    def lines(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").splitlines()

    @staticmethod
    def write(path: Path, lines: Sequence[str]) -> None:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def block(self, path: Path, k: int) -> list[int]:
        """1-based line numbers of the k-th (0-based) blank-line separated block (CoNLL-U, IOB2)."""
        blocks, block = [], []
        for no, line in enumerate(self.lines(path), 1):
            if line.strip():
                block.append(no)
            elif block:
                blocks.append(block)
                block = []
        return (blocks + [block])[k]

    def tokens(self, path: Path, k: int) -> list[int]:
        """1-based line numbers of the token lines (not comments) of the k-th sentence."""
        lines = self.lines(path)
        return [no for no in self.block(path, k) if not lines[no - 1].startswith("#")]

    def conll2012_rows(self, path: Path, k: int) -> list[int]:
        """1-based line numbers of the token rows of the k-th sentence of a CoNLL-2012 file."""
        sentences, rows = [], []
        for no, line in enumerate(self.lines(path), 1):
            if line.strip() and not line.startswith("#"):
                rows.append(no)
            elif rows:
                sentences.append(rows)
                rows = []
        return sentences[k]

    def set_column(self, path: Path, no: int, column: int, value: str) -> None:
        lines = self.lines(path)
        sep = "\t" if "\t" in lines[no - 1] else None
        cols = lines[no - 1].split(sep)
        cols[column] = value
        lines[no - 1] = ("\t" if sep else "   ").join(cols)
        self.write(path, lines)

    def column(self, path: Path, no: int, column: int) -> str:
        line = self.lines(path)[no - 1]
        return line.split("\t" if "\t" in line else None)[column]

    # -- after the run -----------------------------------------------------------------------------
    def outcome(self, code: int, out: str, err: str, rewrites: Sequence[str] = ()) -> Outcome:
        metrics_written = False
        for m in self.out.rglob("metrics.json") if self.out.exists() else ():
            rel = str(m.relative_to(self.out))
            metrics_written |= self.earlier.get(rel) != _digest(m)
        intact = True
        for rel, digest in self.earlier.items():
            path = self.out / rel
            if rel in rewrites:  # legitimately replaced by this run: still a whole file
                intact &= path.is_file() and (not rel.endswith(".ckpt") or zipfile.is_zipfile(path))
            else:
                intact &= path.is_file() and _digest(path) == digest
        logs = sorted(self.hydra.rglob("*.log")) + sorted(
            self.out.rglob("*.log") if self.out.exists() else []
        )
        failure = self.out / "failure.json"
        return Outcome(
            code=code,
            out=out,
            err=err,
            metrics_written=metrics_written,
            earlier_intact=intact,
            log="".join(p.read_text(errors="replace") for p in logs),
            failure=json.loads(failure.read_text()) if failure.is_file() else None,
        )


# ---- running -----------------------------------------------------------------------------------------


def base_args(ctx: Ctx, *, multirun: bool = False) -> dict[str, str]:
    """The overrides every case starts from (a case replaces or adds keys)."""
    args = {
        "mode": "stl",
        "taskset": "pos",
        "trainer": "smoke",
        "logger": "none",
        "encoder": ctx.tiny,
        "data_dir": str(ctx.data),
    }
    if multirun:
        args["hydra.sweep.dir"] = str(ctx.out)
    else:
        args["out_dir"] = str(ctx.out)
        args["hydra.run.dir"] = str(ctx.hydra)
    return args


def command(ctx: Ctx, overrides: Sequence[str], *, multirun: bool = False) -> list[str]:
    """``base_args`` with ``overrides`` applied (same key: replaced; ``~key``: removed)."""
    args = base_args(ctx, multirun=multirun)
    extra = []
    for o in overrides:
        if o.startswith("~"):
            args.pop(o[1:], None)
            continue
        key, eq, value = o.partition("=")
        if eq and not key.startswith("+"):
            args[key] = value
        else:
            extra.append(o)
    return (["-m"] if multirun else []) + [f"{k}={v}" for k, v in args.items()] + extra


def _status(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1  # sys.exit("message") exits 1


def run_in_process(ctx: Ctx, argv: list[str], capfd, monkeypatch, rewrites: Sequence[str] = ()) -> Outcome:
    """``mtlheads <argv>`` through ``mtlheads.cli.main`` in this process, the terminal captured."""
    from mtlheads import cli
    from mtlheads.launch import jobs

    monkeypatch.setattr(jobs, "_failed_sweeps", [])
    monkeypatch.setattr(sys, "argv", ["mtlheads", *argv])
    monkeypatch.chdir(ctx.root)
    capfd.readouterr()
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = _status(e.code)
    except BaseException:  # what the interpreter does with an exception nobody caught
        traceback.print_exc()
        code = 1
    out, err = capfd.readouterr()
    return ctx.outcome(code, out, err, rewrites)


def cli_env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_process(ctx: Ctx, argv: list[str], rewrites: Sequence[str] = ()) -> Outcome:
    """``mtlheads <argv>`` as a real process (``python -m mtlheads.cli``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mtlheads.cli", *argv],
        cwd=ctx.root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return ctx.outcome(code, proc.stdout, proc.stderr, rewrites)


def run_and_signal(ctx: Ctx, argv: list[str], signum: int) -> Outcome:
    """Starts ``mtlheads <argv>``, sends ``signum`` once training has saved ``last.ckpt``."""
    out, err = ctx.root / "stdout.txt", ctx.root / "stderr.txt"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mtlheads.cli", *argv], cwd=ctx.root, env=cli_env(), stdout=fo, stderr=fe
        )
        last, deadline = ctx.out / "checkpoints" / "last.ckpt", time.monotonic() + 600
        while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signum)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    return ctx.outcome(code, out.read_text(), err.read_text())


# ---- verdicts ----------------------------------------------------------------------------------------


def classify(outcome: Outcome, where: Sequence[str], *, multirun: bool = False) -> str:
    """One of :data:`VERDICTS`.

    * silently accepted: exit status 0, or a metrics.json written;
    * traceback: a Python traceback on the terminal;
    * clear: exit status != 0 and one stderr line names the place (every string of ``where``: file:line,
      or the config key and value): the last line of a single run, any line of a multirun (each job has
      its own, then the summary);
    * unclear: anything else (the error does not say where on one line).
    """
    if outcome.code == 0 or outcome.metrics_written:
        return "silently accepted"
    if "Traceback (most recent call last)" in outcome.terminal:
        return "traceback"
    lines = outcome.err_lines if multirun else outcome.err_lines[-1:]
    if any(all(w in line for w in where) for line in lines):
        return "clear"
    return "unclear"


@dataclass
class Case:
    """One hostile input.

    Attributes:
        name: the test id.
        kind: conllu, iob2, conll2012, glue, config, checkpoint, disk or signal.
        setup: damages the case's data (or prepares files) and returns (overrides, where): ``where`` are the
            strings the one-line message must hold (file:line, or key=value).
        code: the exit status expected (1: a user error; 143/130: SIGTERM/SIGINT).
        in_job: the error happens inside the job (so failure.json and the log hold it); False for a config
            Hydra cannot compose.
        process: "in" (this process), "cli" (a real process) or "signal" (a real process, signalled).
        multirun: run with ``-m`` over ``seed=1,2``.
        rewrites: earlier files this run may replace (it trained before failing), as whole files.
        earlier_metrics: the earlier run left a metrics.json (not for resume cases: resume would skip).
        patch: called with (ctx, monkeypatch) before an in-process run (e.g. a full disk).
        signum: the signal a "signal" case sends once training has saved last.ckpt.
        failure_json: the job can write failure.json (not where writing is what fails).
    """

    name: str
    kind: str
    setup: Callable[[Ctx], tuple[list[str], list[str]]]
    code: int = 1
    in_job: bool = True
    process: str = "in"
    multirun: bool = False
    rewrites: tuple[str, ...] = ()
    earlier_metrics: bool = True
    patch: Callable | None = None
    signum: int | None = None
    failure_json: bool = True


class _FullDisk:
    """A file whose writes fail as on a full disk (``OSError(errno)``); everything else passes through."""

    def __init__(self, f, err: int):
        self._f, self._errno = f, err

    def write(self, data) -> int:
        raise OSError(self._errno, os.strerror(self._errno))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


def fail_writes(monkeypatch, names: Sequence[str], err: int = errno.ENOSPC) -> None:
    """Makes writes to the files whose names start with ``names`` fail with ``err`` (ENOSPC: a full disk).

    Every atomic write of mtlheads goes through ``os.fdopen`` on a temp file ``.<name>.<random>.tmp`` next to
    its target; torch.save writes through the same file object, so a checkpoint fails like on a real full
    disk (torch's own "unexpected pos" error, the OSError as its context).
    """
    real = os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real(fd, *args, **kwargs)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if any(name.startswith(f".{n}") for n in names):
            return _FullDisk(f, err)
        return f

    monkeypatch.setattr(os, "fdopen", fdopen)


SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
