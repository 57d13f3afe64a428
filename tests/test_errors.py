"""User errors and the rest (issue 19): what counts as a user error, the debug switch, bugs keep their
traceback, weights-only checkpoint loading and its trust switch, CoNLL-U trees, UTF-8 lines, the layers of
one sentence, config checks, and a fit that trained nothing writes no scores.

The hostile-input corpus itself is ``test_errors_fuzz.py``.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import pickle
import signal
from pathlib import Path

import pytest
import torch
from conftest import compose_config
from fuzz.harness import Ctx, command, fail_writes, make_template, run_in_process

from mtlheads import errors
from mtlheads.checkpoint import read_checkpoint, trusting
from mtlheads.data import read_conll2012, read_conllu, read_iob2
from mtlheads.data.glue_reader import read_glue
from mtlheads.data.sentence import DataFormatError, Sentence
from mtlheads.encoder.load import EncoderNotAvailableError
from mtlheads.errors import CheckpointError, ConfigError, MissingFileError, OutputError
from mtlheads.launch import jobs
from mtlheads.training.checkpointing import AtomicCheckpointIO
from mtlheads.utils.io import atomic_save, atomic_write_json
from mtlheads.validate import check_alignment, check_config

SRC = Path(__file__).resolve().parents[1] / "src" / "mtlheads"


# ---- what a user error is ------------------------------------------------------------------------------


def test_user_errors_are_our_validation_errors_and_nothing_else():
    user = [
        DataFormatError("a.conllu", 3, "bad"),
        ConfigError("seed=abc: not an integer", key="seed"),
        MissingFileError("x: no such file"),
        CheckpointError("x.ckpt: truncated"),
        OutputError("m.json", OSError(errno.ENOSPC, "No space left on device")),
        EncoderNotAvailableError("no hub"),
    ]
    assert all(errors.is_user_error(e) for e in user)
    bugs = [ValueError("x"), KeyError("pos"), RuntimeError("x"), FileNotFoundError("x"), TypeError("x")]
    assert not any(errors.is_user_error(e) for e in bugs)
    # failure.json keeps the built-in type these errors were always reported as (reports, scripts).
    assert [errors.failure_type(e) for e in user[:3]] == [
        "DataFormatError",
        "ValueError",
        "FileNotFoundError",
    ]
    assert [errors.exit_status(e) for e in (user[0], user[-1])] == [1, 2]
    assert isinstance(user[1], ValueError) and isinstance(user[2], FileNotFoundError)  # callers' excepts


def test_a_refused_write_names_the_file_even_behind_torchs_own_error(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save({"step": 1}, path)
    fail_writes(monkeypatch, ["last.ckpt"])
    with pytest.raises(OutputError, match=rf"{path}: cannot write it: No space left on device") as info:
        atomic_save({"step": 2, "w": torch.zeros(1000)}, path)  # torch says "unexpected pos ..." itself
    assert "resume=true" in str(info.value) and info.value.errno == errno.ENOSPC
    fail_writes(monkeypatch, ["metrics.json"], errno.EROFS)
    with pytest.raises(OutputError, match="Read-only file system; choose a writable out_dir"):
        atomic_write_json(tmp_path / "metrics.json", {"a": 1})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}  # the earlier file is whole
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]
    # A plain OSError is not a refused write: it passes unchanged (and is a bug until shown otherwise).
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError, match="disk gone") as info:
        atomic_write_json(tmp_path / "x.json", {})
    assert not isinstance(info.value, OutputError)


def test_failure_json_that_cannot_be_written_does_not_hide_the_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    assert jobs.record_failure(tmp_path / "a-file" / "sub", ValueError("x"), []) is None  # no raise
    path = jobs.record_failure(tmp_path, ConfigError("seed=abc: not an integer", key="seed"), ["seed=abc"])
    failure = json.loads(path.read_text())
    assert (failure["type"], failure["user_error"], failure["overrides"]) == (
        "ValueError",
        True,
        ["seed=abc"],
    )


def test_the_interrupt_line_names_the_checkpoint_resume_continues_from():
    from mtlheads.checkpoint import CHECKPOINT_DIR, LAST

    assert Path(CHECKPOINT_DIR) / LAST == jobs.LAST_CHECKPOINT  # spelled out in launch (a lower layer)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("data"))


@pytest.fixture
def ctx(tmp_path, template, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return Ctx(tmp_path, template, tiny_bert_dir, trained=tmp_path)


def _two_roots(ctx: Ctx) -> str:
    path = ctx.ewt("ud")
    rows = ctx.tokens(path, 0)
    ctx.set_column(path, rows[0], 6, "0")  # word 1 becomes a second root (word 4 is the root)
    return f"{path}:{rows[3]}: word 4 is a second root"


@pytest.mark.parametrize("switch", [["debug=true"], "HYDRA_FULL_ERROR"])
def test_debug_switch_adds_the_traceback_to_a_user_error(ctx, capfd, monkeypatch, switch):
    message = _two_roots(ctx)
    quiet = run_in_process(ctx, command(ctx, []), capfd, monkeypatch)
    assert quiet.code == 1 and "Traceback" not in quiet.terminal
    assert quiet.err_lines[-1].startswith(f"error: {message}")
    if switch == "HYDRA_FULL_ERROR":
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    loud = run_in_process(ctx, command(ctx, switch if isinstance(switch, list) else []), capfd, monkeypatch)
    assert loud.code == 1 and "Traceback (most recent call last)" in loud.err
    assert loud.err_lines[-1] == quiet.err_lines[-1]  # the same line, last


def test_a_bug_still_shows_its_traceback_in_a_single_run_and_a_multirun(ctx, capfd, monkeypatch):
    from mtlheads.modes import train

    def bug(cfg):
        raise KeyError("pos")  # what a bug looks like: no message for a user

    monkeypatch.setattr(train, "run", bug)
    single = run_in_process(ctx, command(ctx, []), capfd, monkeypatch)
    assert single.code == 1 and "Traceback (most recent call last)" in single.err
    assert "KeyError: 'pos'" in single.err and not any(line.startswith("error:") for line in single.err_lines)
    assert single.failure["type"] == "KeyError" and single.failure["user_error"] is False

    ctx.out = ctx.root / "sweep"
    multi = run_in_process(ctx, command(ctx, ["seed=1,2"], multirun=True), capfd, monkeypatch)
    assert multi.code == 1 and multi.err.count("Traceback (most recent call last)") == 2
    assert json.loads((ctx.out / "failures.json").read_text())["n_failed"] == 2


def test_single_run_and_multirun_print_the_same_line(ctx, capfd, monkeypatch):
    message = _two_roots(ctx)
    single = run_in_process(ctx, command(ctx, []), capfd, monkeypatch)
    ctx.out = ctx.root / "sweep"
    multi = run_in_process(ctx, command(ctx, ["seed=1,2"], multirun=True), capfd, monkeypatch)
    line = single.err_lines[-1]
    assert line.startswith(f"error: {message}") and single.code == multi.code == 1
    assert [x for x in multi.err_lines if x.startswith("error:")] == [line, line]  # one per job
    assert multi.err_lines[-1].startswith("2 job(s) failed, 0 finished")


def test_sigterm_outside_training_stops_the_run_with_its_own_status():
    previous = signal.getsignal(signal.SIGTERM)
    with errors.catch_signals():
        with pytest.raises(errors.Interrupted):
            signal.raise_signal(signal.SIGTERM)
        assert errors.received_signal() == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert errors.received_signal() == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is previous and errors.received_signal() is None  # restored
    assert [errors.signal_exit_status(s) for s in (signal.SIGTERM, signal.SIGINT)] == [143, 130]


# ---- checkpoints ---------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a folder: code a crafted checkpoint would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_checkpoints_load_weights_only_unless_trusted(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "x.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: refused to load.*trust_checkpoint=true"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):  # Lightning's own loads (resume, best.ckpt)
        AtomicCheckpointIO().load_checkpoint(path)
    assert not marker.exists()
    with trusting(True):  # trust_checkpoint=true: the file is the user's own
        assert read_checkpoint(path)["state_dict"]["w"].sum() == 2
    assert marker.exists()
    marker.rmdir()
    with pytest.raises(CheckpointError):  # the switch ends with the run
        read_checkpoint(path)


def test_a_damaged_last_checkpoint_says_which_file_to_delete(tmp_path):
    last = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, last)
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{last}: not a readable checkpoint.*delete {last}"):
        AtomicCheckpointIO().load_checkpoint(last)
    with pytest.raises(CheckpointError, match=r"no such checkpoint file"):
        read_checkpoint(tmp_path / "none.ckpt")


def test_every_torch_load_in_the_package_is_weights_only():
    """No ``torch.load(..., weights_only=False)`` anywhere: our loads go through load_torch_file, and a bare
    torch.load is weights-only by default since torch 2.6."""
    offenders = []
    for file in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "load"):
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is True):
                    if file.name != "io.py":  # load_torch_file: weights_only=not trust
                        offenders.append(f"{file.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_a_bare_torch_load_is_weights_only_here(tmp_path):
    """What the bare torch.load calls rely on (torch >= 2.6, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD unset)."""
    path = tmp_path / "x.pt"
    torch.save({"payload": _Payload(tmp_path / "ran")}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not (tmp_path / "ran").exists()


# ---- data ----------------------------------------------------------------------------------------------

CONLLU = [
    "# sent_id = s1",  # 1
    "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_",  # 2: a multiword token
    "1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_",  # 3
    "2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_",  # 4
    "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_",  # 5
    "3.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t0:root\t_",  # 6: an empty node
    "4\t!\t!\tPUNCT\t.\t_\t3\tpunct\t_\t_",  # 7
]


def _conllu(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "t.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _with(lines: list[str], no: int, head: str | None = None, line: str | None = None) -> list[str]:
    out = list(lines)
    if line is not None:
        out[no - 1] = line
    else:
        cols = out[no - 1].split("\t")
        cols[6] = head
        out[no - 1] = "\t".join(cols)
    return out


@pytest.mark.parametrize(
    ("edit", "line", "message"),
    [
        (
            lambda ls: _with(ls, 5, "1"),
            3,
            r"dependency cycle 1 -> 3 -> 1: .*\(and the sentence has no root\)",
        ),
        (lambda ls: _with(ls, 4, "2"), 4, r"dependency cycle 2 -> 2"),
        (lambda ls: _with(ls, 3, "0"), 5, r"word 3 is a second root \(head 0, as word 1\)"),
        (lambda ls: _with(ls, 2, line="3-5\tx\t_\t_\t_\t_\t_\t_\t_\t_"), 2, "must come right before word 1"),
        (
            lambda ls: [*ls[:6], "4-5\tx\t_\t_\t_\t_\t_\t_\t_\t_", ls[6]],
            7,
            "runs past the sentence's last word",
        ),
        (lambda ls: _with(ls, 2, line="1-1\tx\t_\t_\t_\t_\t_\t_\t_\t_"), 2, "must span 2\\+ words"),
        (lambda ls: _with(ls, 6, line="7.1\tx\t_\t_\t_\t_\t_\t_\t_\t_"), 6, "empty node after word 7"),
    ],
)
def test_conllu_trees_must_be_trees(tmp_path, edit, line, message):
    path = _conllu(tmp_path, edit(CONLLU))
    with pytest.raises(DataFormatError, match=message) as info:
        read_conllu(path)
    assert info.value.line == line and f"{path}:{line}:" in str(info.value)


def test_non_projective_trees_and_multiword_tokens_are_fine(tmp_path):
    crossing = [  # arcs 1->3 and 2->4 cross
        "1\ta\ta\tX\tX\t_\t3\tdep\t_\t_",
        "2\tb\tb\tX\tX\t_\t0\troot\t_\t_",
        "3\tc\tc\tX\tX\t_\t2\tdep\t_\t_",
        "4\td\td\tX\tX\t_\t1\tdep\t_\t_",
    ]
    (s1,) = read_conllu(_conllu(tmp_path, crossing))
    assert s1.heads == [3, 0, 2, 1]
    (s2,) = read_conllu(_conllu(tmp_path, CONLLU))
    assert s2.words == ["Do", "n't", "go", "!"]


def test_invalid_utf8_is_reported_by_line_and_column(tmp_path):
    conllu = tmp_path / "a.conllu"
    conllu.write_bytes(("\ufeff" + "\n".join(CONLLU[:4])).encode() + b"\n5\tgo\xe9\n")  # BOM, Latin-1 byte
    iob2 = tmp_path / "a.iob2"
    iob2.write_bytes(b"# sent_id = a\n1\tNew\tB-LOC\n2\tY\xffork\tI-LOC\n")
    gold = tmp_path / "a.gold_conll"
    gold.write_bytes(b"#begin document (d); part 000\n\x80\n")
    glue = tmp_path / "dev.tsv"
    glue.write_bytes(b"sentence\tlabel\nok\t1\nbad \xfe\t0\n")
    for read, path, line, column in [
        (read_conllu, conllu, 5, 5),
        (read_iob2, iob2, 3, 4),
        (read_conll2012, gold, 2, 1),
        (lambda p: read_glue(p, task="sst2"), glue, 3, 5),
    ]:
        with pytest.raises(DataFormatError, match=rf"{path}:{line}: not UTF-8: byte 0x.. at column {column}"):
            read(path)


def _sentences(path: str, sizes: list[int], ids: bool = True, word: str = "w") -> list[Sentence]:
    return [
        Sentence(
            words=[f"{word}{i}"] * n,
            source=f"{path}:{10 * i + 1}",
            meta={"sent_id": f"s{i}"} if ids else {},
        )
        for i, n in enumerate(sizes)
    ]


def test_layers_of_one_sentence_must_have_the_same_words():
    ud, ner, c12 = (
        _sentences("ud", [3, 4, 5]),
        _sentences("ner", [3, 2, 5]),
        _sentences("c12", [3, 4, 6], False),
    )
    with pytest.raises(
        DataFormatError, match=r"ner:11: sentence s1 has 2 words, but the same sentence in ud:11"
    ):
        check_alignment({"ud": ud, "ner": ner})
    with pytest.raises(DataFormatError, match=r"c12:21: sentence s2 has 6 words, but .* ud:21 has 5"):
        check_alignment({"ud": ud, "c12": c12})
    with pytest.raises(DataFormatError, match=r"c12: 2 sentences, but ud has 3"):
        check_alignment({"ud": ud, "c12": _sentences("c12", [3, 4], False)})
    # Other sentences (another corpus, e.g. OntoNotes next to EWT): nothing to compare.
    check_alignment({"ud": ud, "other": _sentences("other", [3, 2, 5], False, word="v")})
    check_alignment(
        {"ud": ud, "ner": _sentences("ner", [3, 4, 5]), "c12": _sentences("c12", [3, 4, 5], False)}
    )
    check_alignment({"ud": ud, "glue": [object()]})  # GLUE examples have no words


# ---- configs and what a run may score ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("seed=abc", "seed=abc: not an integer"),
        ("seed=true", "seed=true: not an integer"),
        ("batch.max_tokens=-100", "batch.max_tokens=-100: must be at least 1"),
        ("batch.max_sentences=2.5", "batch.max_sentences=2.5: not an integer"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0: trains nothing"),
        ("trainer.limit_val_batches=0.0", "trainer.limit_val_batches=0.0: no dev evaluation"),
        ("checkpoint.every_n_train_steps=-5", "checkpoint.every_n_train_steps=-5: must be at least 0"),
        ("optim.warmup=1.5", "optim.warmup=1.5: must be in [0, 1]"),
        ("optim.decoder_lr=nan", "optim.decoder_lr=nan: not a number"),
        ("encoder.name=./no/such/model", "encoder=./no/such/model: no such folder"),
    ],
)
def test_config_values_that_cannot_work_are_named(override, named):
    with pytest.raises(ConfigError, match="^" + named.replace("[", r"\[").replace(".", r"\.")):
        check_config(compose_config(["taskset=pos", "trainer=smoke", override]))


@pytest.mark.parametrize("mode", ["stl", "mtl", "gate", "eval", "prune"])
def test_the_shipped_configs_pass_the_checks(mode, tmp_path):
    check_config(compose_config([f"mode={mode}", "taskset=pos", f"out_dir={tmp_path}"]))
    check_config(compose_config(["trainer=smoke", "trainer.max_epochs=-1", "+trainer.max_steps=10"]))


@pytest.mark.parametrize(
    ("override", "message"),
    [("trainer.limit_train_batches=0", "the run trained no step"), ("trainer.limit_val_batches=0", "no dev")],
)
def test_a_fit_that_trained_or_evaluated_nothing_writes_no_scores(tmp_path, tiny_bert_dir, override, message):
    from mtlheads.modes import train

    cfg = compose_config(  # train.run directly: the CLI's config check would refuse these first
        ["mode=stl", "taskset=pos", f"encoder.name={tiny_bert_dir}", "trainer=smoke", "logger=none"]
        + [f"out_dir={tmp_path}", override]
    )
    with pytest.raises(ConfigError, match=message):
        train.run(cfg)
    assert not (tmp_path / "metrics.json").exists()
