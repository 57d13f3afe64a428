"""The corpus: each case damages one thing and says where the one-line error must point.

A case's ``setup(ctx)`` edits the case's own data copy (or makes files) and returns ``(overrides, where)``;
overrides replace keys of :func:`fuzz.harness.base_args` (``mode=stl taskset=pos trainer=smoke ...``).
"""

from __future__ import annotations

import errno
import os
import signal

import torch

from fuzz.harness import Case, Ctx, fail_writes

CASES: list[Case] = []


def case(kind: str, **options):
    """Registers the decorated setup function as a case named after it."""

    def register(setup):
        CASES.append(Case(name=setup.__name__, kind=kind, setup=setup, **options))
        return setup

    return register


def at(path, no: int) -> str:
    """``ewt/ud/dev.conllu:12``: the tail of the path and the line, as the message must name them."""
    return f"{path.parent.name}/{path.name}:{no}"


def tail(path) -> str:
    return f"{path.parent.name}/{path.name}"


# ---- CoNLL-U -------------------------------------------------------------------------------------------


@case("conllu")
def conllu_nine_columns(ctx: Ctx):
    path = ctx.ewt("ud")
    no = ctx.tokens(path, 1)[1]
    lines = ctx.lines(path)
    lines[no - 1] = lines[no - 1].rsplit("\t", 1)[0]
    ctx.write(path, lines)
    return [], [at(path, no)]


@case("conllu")
def conllu_token_id_skips(ctx: Ctx):
    path = ctx.ewt("ud")
    no = ctx.tokens(path, 1)[2]
    ctx.set_column(path, no, 0, "9")
    return [], [at(path, no)]


@case("conllu")
def conllu_head_not_a_number(ctx: Ctx):
    path = ctx.ewt("ud")
    no = ctx.tokens(path, 2)[0]
    ctx.set_column(path, no, 6, "x")
    return ["taskset=dep"], [at(path, no)]


@case("conllu")
def conllu_head_out_of_range(ctx: Ctx):
    path = ctx.ewt("ud")
    no = ctx.tokens(path, 2)[0]
    ctx.set_column(path, no, 6, "99")
    return ["taskset=dep"], [at(path, no)]


def _root_and_child(ctx: Ctx, path, start: int) -> tuple[list[int], int, int]:
    """The first sentence from the ``start``-th on whose root has a dependent: its token lines, the root's
    and a dependent's word ids."""
    for k in range(start, 40):
        rows = ctx.tokens(path, k)
        heads = [int(ctx.column(path, no, 6)) for no in rows]
        root = heads.index(0) + 1
        if root in heads:
            return rows, root, heads.index(root) + 1
    raise AssertionError("no sentence with a dependent of its root")


@case("conllu")
def conllu_cycle_without_root(ctx: Ctx):
    path = ctx.ewt("ud")
    rows, root, child = _root_and_child(ctx, path, 2)
    ctx.set_column(path, rows[root - 1], 6, str(child))  # root <-> child: a cycle, and no root
    return ["taskset=dep"], [at(path, rows[min(root, child) - 1]), "cycle"]


@case("conllu")
def conllu_two_roots(ctx: Ctx):
    path = ctx.ewt("ud")
    rows, root, child = _root_and_child(ctx, path, 3)
    ctx.set_column(path, rows[child - 1], 6, "0")
    return ["taskset=dep"], [at(path, rows[max(root, child) - 1]), "root"]


@case("conllu")
def conllu_word_is_its_own_head(ctx: Ctx):
    path = ctx.ewt("ud")
    rows, root, child = _root_and_child(ctx, path, 4)
    ctx.set_column(path, rows[child - 1], 6, str(child))
    return ["taskset=dep"], [at(path, rows[child - 1]), "cycle"]


@case("conllu")
def conllu_cycle_in_test_split(ctx: Ctx):
    path = ctx.ewt("ud", "test")
    rows, root, child = _root_and_child(ctx, path, 5)
    ctx.set_column(path, rows[root - 1], 6, str(child))
    return [], [at(path, rows[min(root, child) - 1])]


@case("conllu")
def conllu_multiword_token_past_the_end(ctx: Ctx):
    path = ctx.ewt("ud")
    rows = ctx.tokens(path, 1)
    n = len(rows)
    lines = ctx.lines(path)
    lines.insert(rows[-1] - 1, f"{n}-{n + 1}\tcan't\t_\t_\t_\t_\t_\t_\t_\t_")  # before the last word
    ctx.write(path, lines)
    return [], [at(path, rows[-1])]


@case("conllu")
def conllu_multiword_token_reversed(ctx: Ctx):
    path = ctx.ewt("ud")
    rows = ctx.tokens(path, 1)
    lines = ctx.lines(path)
    lines.insert(rows[1] - 1, "2-1\tdunno\t_\t_\t_\t_\t_\t_\t_\t_")  # before word 2
    ctx.write(path, lines)
    return [], [at(path, rows[1])]


@case("conllu")
def conllu_invalid_utf8(ctx: Ctx):
    path = ctx.ewt("ud")
    no = ctx.tokens(path, 2)[1]
    data = path.read_bytes().split(b"\n")
    data[no - 1] = data[no - 1].replace(b"\t", b"\xff\xfe\t", 1)
    path.write_bytes(b"\n".join(data))
    return [], [at(path, no), "UTF-8"]


@case("conllu")
def conllu_binary_garbage(ctx: Ctx):
    path = ctx.ewt("ud")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return [], [at(path, 1)]


@case("conllu")
def conllu_empty_dev(ctx: Ctx):
    path = ctx.ewt("ud")
    path.write_text("")
    return [], [tail(path), "no sentences"]


@case("conllu")
def conllu_empty_train(ctx: Ctx):
    path = ctx.ewt("ud", "train")
    path.write_text("")
    return [], [tail(path), "no sentences"]


@case("conllu")
def conllu_comments_only(ctx: Ctx):
    path = ctx.ewt("ud")
    path.write_text("# newdoc id = x\n# text = nothing here\n")
    return [], [at(path, 1)]


@case("conllu")
def conllu_directory_as_file(ctx: Ctx):
    path = ctx.data / "ewt" / "ud"
    return [f"tasks.pos.dev={path}"], [str(path), "directory"]


@case("conllu")
def conllu_missing_file(ctx: Ctx):
    path = ctx.data / "ewt" / "ud" / "dev-typo.conllu"
    return [f"tasks.pos.dev={path}"], [str(path)]


# ---- IOB2 ----------------------------------------------------------------------------------------------


@case("iob2")
def iob2_unknown_tag(ctx: Ctx):
    path = ctx.ewt("ner")
    no = ctx.tokens(path, 1)[1]
    ctx.set_column(path, no, 2, "X-PER")
    return ["taskset=ner"], [at(path, no)]


@case("iob2")
def iob2_inside_without_begin(ctx: Ctx):
    path = ctx.ewt("ner")
    no = ctx.tokens(path, 1)[0]
    ctx.set_column(path, no, 2, "I-PER")
    return ["taskset=ner"], [at(path, no)]


@case("iob2")
def iob2_two_columns(ctx: Ctx):
    path = ctx.ewt("ner")
    no = ctx.tokens(path, 2)[3]
    lines = ctx.lines(path)
    lines[no - 1] = "\t".join(lines[no - 1].split("\t")[:2])
    ctx.write(path, lines)
    return ["taskset=ner"], [at(path, no)]


@case("iob2")
def iob2_index_repeats(ctx: Ctx):
    path = ctx.ewt("ner")
    no = ctx.tokens(path, 2)[2]
    ctx.set_column(path, no, 0, "2")
    return ["taskset=ner"], [at(path, no)]


@case("iob2")
def iob2_empty_dev(ctx: Ctx):
    path = ctx.ewt("ner")
    path.write_text("\n\n")
    return ["taskset=ner"], [tail(path), "no sentences"]


@case("iob2")
def iob2_invalid_utf8(ctx: Ctx):
    path = ctx.ewt("ner", "train")
    no = ctx.tokens(path, 5)[0]
    data = path.read_bytes().split(b"\n")
    data[no - 1] = data[no - 1] + b"\xc3"
    path.write_bytes(b"\n".join(data))
    return ["taskset=ner"], [at(path, no), "UTF-8"]


@case("iob2")
def iob2_word_count_differs_from_ud(ctx: Ctx):
    path = ctx.ewt("ner")
    k = next(k for k in range(3, 40) if len(ctx.tokens(path, k)) >= 3)
    block = ctx.block(path, k)
    lines = ctx.lines(path)
    del lines[block[-1] - 1]  # the sentence's last word: 1 word fewer than in UD
    ctx.write(path, lines)
    return ["mode=mtl", "taskset=[pos,ner]"], [at(path, block[0]), "words"]


# ---- CoNLL-2012 ----------------------------------------------------------------------------------------


@case("conll2012")
def conll2012_bracket_closes_nothing(ctx: Ctx):
    path = ctx.ewt("conll2012")
    no = ctx.conll2012_rows(path, 1)[-1]
    ctx.set_column(path, no, 5, ctx.column(path, no, 5) + ")")
    return ["taskset=con"], [at(path, no)]


@case("conll2012")
def conll2012_document_never_closed(ctx: Ctx):
    path = ctx.ewt("conll2012")
    lines = ctx.lines(path)
    last_end = max(i for i, line in enumerate(lines) if line.startswith("#end document"))
    del lines[last_end]
    ctx.write(path, lines)
    return ["taskset=con"], [at(path, len(lines)), "never closed"]


@case("conll2012")
def conll2012_predicate_without_column(ctx: Ctx):
    path = ctx.ewt("conll2012")
    rows = ctx.conll2012_rows(path, 2)
    no = next(no for no in rows if ctx.column(path, no, 7) == "-")
    ctx.set_column(path, no, 7, "01")
    return ["taskset=srl"], [at(path, rows[0])]


@case("conll2012")
def conll2012_too_few_columns(ctx: Ctx):
    path = ctx.ewt("conll2012")
    no = ctx.conll2012_rows(path, 1)[0]
    lines = ctx.lines(path)
    lines[no - 1] = " ".join(lines[no - 1].split()[:6])
    ctx.write(path, lines)
    return ["taskset=con"], [at(path, no)]


@case("conll2012")
def conll2012_empty_dev(ctx: Ctx):
    path = ctx.ewt("conll2012")
    path.write_text("")
    return ["taskset=con"], [tail(path), "no sentences"]


@case("conll2012")
def conll2012_word_count_differs_from_ud(ctx: Ctx):
    path = ctx.ewt("conll2012")
    lines = ctx.lines(path)

    def plain(no: int) -> bool:  # no bracket, entity, predicate or argument on this word
        cols = lines[no - 1].split()
        return cols[5] == "*" and cols[7] == "-" and all(c == "*" for c in cols[10:-1])

    sentences = (ctx.conll2012_rows(path, k) for k in range(1, 40))
    rows = next(r for r in sentences if any(plain(no) for no in r))
    dup = next(no for no in rows if plain(no))
    lines.insert(dup, lines[dup - 1])  # the word twice: 1 word more than in UD
    for i, no in enumerate(rows + [rows[-1] + 1]):
        cols = lines[no - 1].split()
        cols[2] = str(i)
        lines[no - 1] = "   ".join(cols)
    ctx.write(path, lines)
    return ["mode=mtl", "taskset=[pos,con]"], [at(path, rows[0]), "words"]


# ---- GLUE TSV ------------------------------------------------------------------------------------------


@case("glue")
def glue_header_only_dev(ctx: Ctx):
    path = ctx.rte()
    path.write_text("index\tsentence1\tsentence2\tlabel\n")
    return ["taskset=rte"], [at(path, 1)]


@case("glue")
def glue_header_only_train(ctx: Ctx):
    path = ctx.rte("train")
    path.write_text("index\tsentence1\tsentence2\tlabel\n")
    return ["taskset=rte"], [at(path, 1)]


@case("glue")
def glue_empty_dev(ctx: Ctx):
    path = ctx.rte()
    path.write_text("")
    return ["taskset=rte"], [tail(path), "empty"]


@case("glue")
def glue_unknown_label(ctx: Ctx):
    path = ctx.rte()
    lines = ctx.lines(path)
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tmaybe"
    ctx.write(path, lines)
    return ["taskset=rte"], [at(path, 3)]


@case("glue")
def glue_missing_field(ctx: Ctx):
    path = ctx.rte()
    lines = ctx.lines(path)
    lines[3] = lines[3].rsplit("\t", 1)[0]
    ctx.write(path, lines)
    return ["taskset=rte"], [at(path, 4)]


@case("glue")
def glue_header_lacks_column(ctx: Ctx):
    path = ctx.rte()
    lines = ctx.lines(path)
    lines[0] = "index\tpremise\thypothesis\tlabel"
    ctx.write(path, lines)
    return ["taskset=rte"], [at(path, 1)]


@case("glue")
def glue_invalid_utf8(ctx: Ctx):
    path = ctx.rte()
    data = path.read_bytes().split(b"\n")
    data[4] = data[4].replace(b"\t", b"\tCaf\xe9 ", 1)  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(data))
    return ["taskset=rte"], [at(path, 5), "UTF-8"]


@case("glue")
def glue_blank_line_inside(ctx: Ctx):
    path = ctx.rte("train")
    lines = ctx.lines(path)
    lines.insert(2, "")
    ctx.write(path, lines)
    return ["taskset=rte"], [at(path, 3)]


# ---- configs -------------------------------------------------------------------------------------------


def _config(overrides: list[str], where: list[str]):
    def setup(ctx: Ctx):
        return overrides, where

    return setup


_CONFIGS = [  # (name, overrides, where, options)
    ("config_seed_not_a_number", ["seed=abc"], ["seed=abc"], {}),
    ("config_max_tokens_negative", ["batch.max_tokens=-100"], ["batch.max_tokens=-100"], {}),
    ("config_max_sentences_zero", ["batch.max_sentences=0"], ["batch.max_sentences=0"], {}),
    ("config_zero_epochs", ["trainer.max_epochs=0"], ["trainer.max_epochs=0"], {}),
    ("config_zero_steps", ["+trainer.max_steps=0"], ["trainer.max_steps=0"], {}),
    ("config_no_training_batches", ["trainer.limit_train_batches=0"], ["trainer.limit_train_batches=0"], {}),
    ("config_no_dev_batches", ["trainer.limit_val_batches=0"], ["trainer.limit_val_batches=0"], {}),
    ("config_accumulate_zero", ["trainer.accumulate_grad_batches=0"], ["accumulate_grad_batches=0"], {}),
    ("config_negative_learning_rate", ["optim.encoder_lr=-1"], ["optim.encoder_lr=-1"], {}),
    ("config_taskset_empty", ["taskset=[]"], ["taskset"], {"in_job": False}),
    ("config_taskset_unknown", ["taskset=nope"], ["taskset/nope"], {"in_job": False}),
    ("config_key_unknown", ["lr=0.1"], ["'lr'"], {"in_job": False}),
    ("config_stl_with_three_tasks", ["taskset=ewt3"], ["mode=stl", "taskset"], {}),
    ("config_encoder_folder_missing", ["encoder=/nonexistent/bert"], ["encoder=/nonexistent/bert"], {}),
    ("config_out_dir_impossible", ["out_dir=/proc/x"], ["out_dir=/proc/x"], {"failure_json": False}),
    ("config_dep_decoder_unknown", ["taskset=dep", "tasks.dep.task.decoder=cle"], ["tasks.dep", "cle"], {}),
    ("config_interpolation_to_nothing", ["data_dir=${nope}"], ["'nope'"], {}),
]
for _name, _overrides, _where, _options in _CONFIGS:
    CASES.append(Case(name=_name, kind="config", setup=_config(_overrides, _where), **_options))


@case("config", multirun=True)
def multirun_tree_error_in_every_job(ctx: Ctx):
    path = ctx.ewt("ud")
    rows, root, child = _root_and_child(ctx, path, 3)
    ctx.set_column(path, rows[child - 1], 6, "0")
    return ["taskset=dep", "seed=1,2"], [at(path, rows[max(root, child) - 1])]


# ---- checkpoints ---------------------------------------------------------------------------------------


def _eval(ckpt, *more: str) -> list[str]:
    return ["mode=eval", f"ckpt={ckpt}", *more]


@case("checkpoint")
def checkpoint_missing(ctx: Ctx):
    path = ctx.root / "ckpt" / "best.ckpt"
    return _eval(path), [str(path)]


@case("checkpoint")
def checkpoint_garbage(ctx: Ctx):
    path = ctx.ckpt()
    path.write_bytes(bytes(range(256)) * 8)
    return _eval(path), [str(path)]


@case("checkpoint")
def checkpoint_truncated(ctx: Ctx):
    path = ctx.ckpt()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _eval(path), [str(path)]


@case("checkpoint")
def checkpoint_empty_file(ctx: Ctx):
    path = ctx.ckpt()
    path.write_bytes(b"")
    return _eval(path), [str(path)]


class _Payload:
    """Unpickling this runs code: it creates a file (what a crafted checkpoint could do, and worse)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


@case("checkpoint")
def checkpoint_runs_code_on_load(ctx: Ctx):
    path = ctx.ckpt()
    ckpt = torch.load(path, weights_only=True)
    ckpt["payload"] = _Payload(str(ctx.root / "pwned"))
    torch.save(ckpt, path)
    return _eval(path), [str(path), "trust_checkpoint"]


@case("checkpoint")
def checkpoint_not_ours(ctx: Ctx):
    path = ctx.root / "ckpt" / "weights.pt"
    path.parent.mkdir()
    torch.save({"weight": torch.zeros(3)}, path)
    return _eval(path), [str(path), "not an mtlheads checkpoint"]


@case("checkpoint")
def checkpoint_dir_without_best(ctx: Ctx):
    path = ctx.root / "somerun"
    path.mkdir()
    return _eval(path), [str(path)]


@case("checkpoint")
def checkpoint_eval_file_empty(ctx: Ctx):
    path = ctx.root / "empty.conllu"
    path.write_text("")
    return _eval(ctx.ckpt(), f"eval_files.pos={path}"), [str(path)]


@case("checkpoint")
def checkpoint_eval_file_wrong_format(ctx: Ctx):
    path = ctx.ewt("ner")
    return _eval(ctx.ckpt(), f"eval_files.pos={path}"), [at(path, 4)]


@case("checkpoint", earlier_metrics=False)
def checkpoint_truncated_last_on_resume(ctx: Ctx):
    last = ctx.out / "checkpoints" / "last.ckpt"
    data = (ctx.trained / "checkpoints" / "last.ckpt").read_bytes()
    last.write_bytes(data[: len(data) // 3])  # damaged after it was written (a copy cut short)
    return ["resume=true"], [str(last), "delete"]


# ---- disks ---------------------------------------------------------------------------------------------


# best: best.ckpt, or best-v1.ckpt when an earlier run's best.ckpt is there (Lightning keeps both).
@case("disk", patch=lambda ctx, mp: fail_writes(mp, ["best", "failure.json"]), failure_json=False)
def disk_full_writing_best_checkpoint(ctx: Ctx):
    return [], [str(ctx.out / "checkpoints" / "best"), "No space left"]


@case("disk", patch=lambda ctx, mp: fail_writes(mp, ["last.ckpt"]))
def disk_full_writing_last_checkpoint(ctx: Ctx):
    return ["checkpoint.every_n_train_steps=1"], [str(ctx.out / "checkpoints" / "last.ckpt"), "No space left"]


@case(
    "disk",
    patch=lambda ctx, mp: fail_writes(mp, ["metrics.json", "failure.json"]),
    rewrites=("checkpoints/best.ckpt",),
    failure_json=False,
)
def disk_full_writing_metrics(ctx: Ctx):
    return [], [str(ctx.out / "metrics.json"), "No space left"]


@case("disk", patch=lambda ctx, mp: fail_writes(mp, ["config.yaml"], errno.EDQUOT))
def disk_quota_writing_config(ctx: Ctx):
    return [], [str(ctx.out / "config.yaml"), "quota"]


@case("disk", patch=lambda ctx, mp: fail_writes(mp, ["config.yaml"], errno.EACCES))
def disk_permission_denied(ctx: Ctx):
    return [], [str(ctx.out / "config.yaml"), "Permission denied"]


@case("disk", earlier_metrics=False, failure_json=False)
def disk_out_dir_is_a_file(ctx: Ctx):
    path = ctx.root / "a-file"
    path.write_text("not a folder\n")
    return [f"out_dir={path}"], [f"out_dir={path}"]


# ---- signals and the real terminal ---------------------------------------------------------------------

_LONG = ["trainer.max_epochs=30", "batch.max_sentences=4"]  # 4 steps an epoch: long enough to be stopped


@case("signal", process="signal", signum=signal.SIGTERM, code=143, earlier_metrics=False)
def signal_sigterm_during_training(ctx: Ctx):
    return _LONG, [str(ctx.out / "checkpoints" / "last.ckpt"), "resume=true"]


@case("signal", process="signal", signum=signal.SIGINT, code=130, earlier_metrics=False)
def signal_sigint_during_training(ctx: Ctx):
    return _LONG, [str(ctx.out / "checkpoints" / "last.ckpt"), "resume=true"]


@case("conllu", process="cli")
def cli_tree_error_on_the_real_terminal(ctx: Ctx):
    return conllu_cycle_without_root(ctx)


@case("glue", process="cli", multirun=True)
def cli_multirun_header_only_dev(ctx: Ctx):
    overrides, where = glue_header_only_dev(ctx)
    return [*overrides, "seed=1,2"], where
