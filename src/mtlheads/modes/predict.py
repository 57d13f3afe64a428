"""mode=predict: a saved model's predictions, in each task's own file format (``docs/predict.md``).

``mtlheads mode=predict ckpt=<run dir | best.ckpt | prune folder> [eval_files.<task>=<file>]`` runs every
task of the checkpoint on its file (without ``eval_files``: the task's test split in the checkpoint's
config; for GLUE, whose test split is null, the test file(s) next to its dev file) and writes
``<run dir>/predictions/``:

* ``<stem>.<tasks>.<ext>``: one file per input file, in that file's format, holding the layers of every
  task that read it, their gold columns replaced: ``test.pos+dep.conllu`` (XPOS, HEAD, DEPREL),
  ``test.ner.iob2``, ``test.con+srl.conll`` (CoNLL-2012 POS and parse bits from the tree, SRL columns);
* the scorers' inputs: ``test.con.ptb`` (EVALB) and ``test.srl.props`` (srl-eval.pl), with the gold side
  ``test.con.gold.ptb`` / ``test.srl.gold.props`` written from the input;
* ``glue/<TASK>.tsv``: GLUE leaderboard files (``MNLI-m.tsv`` and ``MNLI-mm.tsv`` for MNLI's two tests).

``text=<file>`` (one sentence per line; ``tokenize=whitespace|nltk``) writes ``<stem>.<tasks>.conllu``
with every token-level task in its columns (POS → XPOS, DEP → HEAD/DEPREL, NER and SRL → MISC, see
:mod:`~mtlheads.data.prediction_formats`) and ``<stem>.con.ptb``. Empty lines are skipped; ``# sent_id``
is the sentence's 1-based line number in the input and the PTB file holds the trees in the same order.

Every input is read and checked before anything is written (a bad line fails as ``file:line``). Batches
then run in file order and stream through the writers, one writer thread per output file fed by a short
queue: predictions are never all in memory, and each file is written atomically. DEP decodes with its
test-time tree decoder (``final_decode``). Scores of files with gold labels go to ``metrics.json`` as in
``mode=eval``.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from mtlheads.build import read_split
from mtlheads.checkpoint import load_model
from mtlheads.data.conll2012_reader import read_conll2012
from mtlheads.data.conllu_reader import read_text
from mtlheads.data.glue_reader import GLUE_TASKS
from mtlheads.data.prediction_formats import glue_prediction_name
from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence
from mtlheads.data.writers import (
    write_conll2012,
    write_conllu,
    write_glue,
    write_iob2,
    write_ptb,
    write_srl_props,
)
from mtlheads.errors import ConfigError
from mtlheads.launch.jobs import job_dir
from mtlheads.model import MultiTaskModel
from mtlheads.report.tables import score_table
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.glue import GlueTask
from mtlheads.tasks.ner import NerTask
from mtlheads.tasks.pos import PosTask
from mtlheads.tasks.srl import SrlTask
from mtlheads.training.data import TaskSplit, encode_inputs, subword_lengths
from mtlheads.utils.io import atomic_write_json

PREDICTIONS = "predictions"
# task class -> (format of its input file, its layer in that format's writer)
_KINDS = {PosTask: ("conllu", "pos"), DepTask: ("conllu", "dep"), NerTask: ("iob2", "ner")}
_KINDS |= {ConTask: ("conll", "con"), SrlTask: ("conll", "srl"), GlueTask: ("glue", "glue")}
_TOKENIZERS = ("whitespace", "nltk")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls other than tab: no tool reads them back


def _kind(name: str, task: Any) -> tuple[str, str]:
    for cls, kind in _KINDS.items():
        if isinstance(task, cls):
            return kind
    raise ConfigError(f"mode=predict has no writer for task '{name}' ({type(task).__name__})", key="ckpt")


@dataclass
class Input:
    """One input file and the tasks predicting on it (one task per output layer).

    Attributes:
        path: the file (for ``text=``: the raw text file).
        fmt: the writer format (``conllu``, ``iob2``, ``conll``, ``glue``).
        splits: per task, the file as the task's reader read it (same sentences, in file order).
        raw: ``text=`` only: the sentences as written (raw forms, ``# sent_id``, ``SpaceAfter=No``).
    """

    path: str
    fmt: str
    splits: dict[str, TaskSplit] = field(default_factory=dict)
    raw: list[Sentence] | None = None

    @property
    def sentences(self) -> list:
        return self.raw if self.raw is not None else next(iter(self.splits.values())).sentences

    def stem(self, names: Iterable[str]) -> str:
        return f"{Path(self.path).stem}.{'+'.join(names)}"


def input_files(cfg: DictConfig, tasks: Mapping[str, Any], train_cfg: DictConfig) -> dict[str, list[str]]:
    """Per task, the files to predict: ``eval_files`` when any is given, else each task's test file."""
    given = {n: str(p) for n, p in (cfg.get("eval_files") or {}).items() if p}
    unknown = sorted(set(given) - set(tasks))
    if unknown:
        raise ConfigError(
            f"eval_files names tasks {unknown} that checkpoint {cfg.ckpt} lacks; it has {list(tasks)}",
            key="eval_files",
        )
    if given:
        return {n: [p] for n, p in given.items()}
    files = {}
    for name, task in tasks.items():
        tc = train_cfg.tasks[name]
        if tc.get("test"):
            files[name] = [str(tc.test)]
        elif isinstance(task, GlueTask) and tc.get("dev"):  # GLUE: unlabelled test file(s) by the dev file
            split_files = GLUE_TASKS[task.glue_task]["files"]
            files[name] = [
                str(Path(tc.dev).parent / f) for s, f in split_files.items() if s.startswith("test")
            ]
        else:
            raise ConfigError(
                f"task '{name}' has no test file in the checkpoint's config: give eval_files.{name}=<file>",
                key=f"eval_files.{name}",
            )
    return files


def read_inputs(files: Mapping[str, list[str]], tasks: Mapping[str, Any], tokenizer) -> list[Input]:
    """Reads every file with its tasks' readers (errors name file:line) and groups the tasks by file."""
    inputs: list[Input] = []
    for name, paths in files.items():
        fmt, layer = _kind(name, tasks[name])
        for path in paths:
            split = read_split(tasks[name], path, tokenizer, key=f"eval_files.{name}")
            same = (i for i in inputs if i.fmt == fmt and Path(i.path).resolve() == Path(path).resolve())
            target = next((i for i in same if layer not in {_kind(n, tasks[n])[1] for n in i.splits}), None)
            if target is None:
                inputs.append(target := Input(path=path, fmt=fmt))
            elif [s.words for s in split.sentences] != [s.words for s in target.sentences]:
                raise DataFormatError(
                    path, None, f"task '{name}' reads other sentences than {list(target.splits)}"
                )
            target.splits[name] = split
    return inputs


def read_raw_text(path: str, tokenize: str, tasks: Mapping[str, Any], tokenizer) -> Input:
    """``text=``: one sentence per non-empty line, split by ``tokenize``, for every token-level task.

    Raises:
        DataFormatError: Not UTF-8, or a line with a control character (``file:line``).
        ConfigError: An unknown ``tokenize``, or a checkpoint without token-level task.
    """
    if tokenize not in _TOKENIZERS:
        raise ConfigError(f"tokenize={tokenize}: choose one of {list(_TOKENIZERS)}", key="tokenize")
    layers = {n: _kind(n, t)[1] for n, t in tasks.items() if _kind(n, t)[0] != "glue"}
    if not layers or len(set(layers.values())) < len(layers):
        raise ConfigError(
            f"text= needs token-level tasks with one task per column; checkpoint has {list(tasks)}",
            key="text",
        )
    names = list(layers)
    split = _nltk_tokens if tokenize == "nltk" else lambda text: [(w, True) for w in text.split(" ")]
    raw, model_sentences = [], []
    for no, line in enumerate(read_text(path).split("\n"), 1):
        text = " ".join(line.split())  # tabs and runs of spaces cannot go into a '# text' comment
        if bad := _CONTROL.search(line.rstrip("\r")):
            raise DataFormatError(
                path, no, f"control character U+{ord(bad.group()):04X} at column {bad.start() + 1}"
            )
        if not text:
            continue  # empty line: no sentence; the sent_ids keep the line numbers
        forms, space = zip(*split(text), strict=True)
        misc = ["_" if s or i == len(forms) - 1 else "SpaceAfter=No" for i, s in enumerate(space)]
        raw.append(Sentence(words=list(forms), meta={"sent_id": str(no), "text": text, "misc": misc}))
        model_sentences.append(Sentence(words=[normalize_token(w) for w in forms], source=f"{path}:{no}"))
    if not raw:
        raise DataFormatError(path, None, "no sentence: the file is empty or has only empty lines")
    lengths = subword_lengths(tokenizer, tasks[names[0]], model_sentences)
    splits = {n: TaskSplit(sentences=model_sentences, lengths=lengths) for n in names}
    return Input(path=path, fmt="conllu", splits=splits, raw=raw)


def _nltk_tokens(text: str) -> list[tuple[str, bool]]:
    """NLTK's Treebank-style word tokenizer (no model download), forms as in ``text``: (form, space after)."""
    from nltk.tokenize import NLTKWordTokenizer

    spans = list(NLTKWordTokenizer().span_tokenize(text))
    return [(text[s:e], k + 1 == len(spans) or spans[k + 1][0] > e) for k, (s, e) in enumerate(spans)]


def file_order_batches(lengths: list[int], *, max_tokens: int, max_sentences: int) -> list[list[int]]:
    """Consecutive sentences under the padded token budget (a longer sentence gets a batch of its own), in
    the order of the file, so that the writers can stream."""
    batches: list[list[int]] = []
    longest = 0
    for i, n in enumerate(lengths):
        if (
            batches
            and max(longest, n) * (len(batches[-1]) + 1) <= max_tokens
            and len(batches[-1]) < max_sentences
        ):
            batches[-1].append(i)
            longest = max(longest, n)
        else:
            batches.append([i])
            longest = n
    return batches


def predict_stream(
    model: MultiTaskModel, tokenizer, inp: Input, batch: DictConfig, *, metrics: Mapping, progress: bool
) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Yields ``(sentence, {task: prediction})`` in file order, a batch at a time; updates ``metrics``."""
    names = list(inp.splits)
    lengths = inp.splits[names[0]].lengths
    batches = file_order_batches(lengths, max_tokens=batch.eval_max_tokens, max_sentences=batch.max_sentences)
    with tqdm(
        total=len(batches), desc=f"predict {'+'.join(names)}", unit="batch", disable=not progress
    ) as bar:
        for idx in batches:
            layers: list[dict[str, Any]] = [{} for _ in idx]
            with torch.inference_mode():
                for name in names:
                    task, sentences = model.tasks[name], [inp.splits[name].sentences[i] for i in idx]
                    inputs = {
                        k: v.to(model.device) for k, v in encode_inputs(task, tokenizer, sentences).items()
                    }
                    out, mask = model(name, inputs)
                    preds = task.decode(out, mask, final=model.final_decode)
                    if name in metrics:
                        metrics[name].update(preds, sentences)
                    for layer, pred in zip(layers, preds, strict=True):
                        layer[name] = pred
            bar.update()
            yield from zip((inp.sentences[i] for i in idx), layers, strict=True)


# ----------------------------------------------------------------------------------------------- writing

_LAYERS = {"conllu": {"pos", "dep", "ner", "srl"}, "conll": {"con", "srl", "ner"}}  # what the writers take
_NATIVE = {"conllu": write_conllu, "conll": write_conll2012}
Sink = tuple[Path, Callable[[Iterable], Any]]


def _sink(write: Callable, path: Path, project: Callable, **kwargs: Any) -> Sink:
    """``path`` and a consumer of ``(sentence, {task: prediction})`` pairs that writes ``project(s, p)``."""
    return path, lambda items: write(path, (project(s, p) for s, p in items), **kwargs)


def sinks(inp: Input, tasks: Mapping[str, Any], folder: Path) -> list[Sink]:
    """The files one input's prediction stream goes to, each with the writer call consuming the stream."""
    names = list(inp.splits)
    layer = {n: _kind(n, tasks[n])[1] for n in names}
    first = names[0]
    if inp.fmt == "glue":
        glue = tasks[first].glue_task
        path = folder / "glue" / glue_prediction_name(glue, Path(inp.path).stem)
        return [_sink(write_glue, path, lambda e, p: (e, p[first]), task=glue)]
    if inp.fmt == "iob2":
        return [_sink(write_iob2, folder / f"{inp.stem(names)}.iob2", lambda s, p: (s, p[first]))]
    out: list[Sink] = []
    native = [n for n in names if layer[n] in _LAYERS[inp.fmt]]
    if native:
        path = folder / f"{inp.stem(native)}.{inp.fmt}"
        out.append(_sink(_NATIVE[inp.fmt], path, lambda s, p: (s, {layer[n]: p[n] for n in native})))
    tagger = next((n for n in names if layer[n] == "pos"), None)  # raw text: trees get the predicted tags
    for name in names:
        if layer[name] == "con":
            out.append(_sink(write_ptb, folder / f"{inp.stem([name])}.ptb", _tree_input(name, tagger)))
        elif layer[name] == "srl" and inp.raw is None:  # raw text: the frames are in the CoNLL-U MISC
            path = folder / f"{inp.stem([name])}.props"
            out.append(_sink(write_srl_props, path, lambda s, p, n=name: (s, p[n])))
    return out


def _tree_input(name: str, tagger: str | None) -> Callable[[Sentence, dict], tuple[Sentence, Any]]:
    """A sentence without POS tags (raw text) gets the tagger's predicted ones as the tree's preterminals."""

    def project(s: Sentence, p: dict) -> tuple[Sentence, Any]:
        if s.pos is None and tagger is not None:
            s = Sentence(words=s.words, pos=p[tagger])
        return s, p[name]

    return project


def write_gold(inp: Input, tasks: Mapping[str, Any], folder: Path) -> list[Path]:
    """The gold side of the scorer inputs of a CoNLL-2012 file: ``*.gold.ptb``, ``*.gold.props``."""
    if inp.raw is not None or inp.fmt != "conll":
        return []
    written = []
    for name, split in inp.splits.items():
        if isinstance(tasks[name], ConTask):
            path = folder / f"{inp.stem([name])}.gold.ptb"
            written.append(write_ptb(path, ((s, s.tree) for s in split.sentences)))
        elif isinstance(tasks[name], SrlTask):  # as read, V included: SrlTask.read removed it
            path = folder / f"{inp.stem([name])}.gold.props"
            written.append(write_srl_props(path, ((s, _merged(s.srl)) for s in read_conll2012(inp.path))))
    return written


def _merged(frames: list) -> list:
    """One frame per predicate (a file may give one predicate two columns; a props file cannot)."""
    by: dict[int, set] = {}
    for p, args in frames or []:
        by.setdefault(p, set()).update(args)
    return [(p, sorted(args)) for p, args in by.items()]


class _Stopped(Exception):
    """Raised inside a writer's input when another writer or the prediction loop failed."""


_END = object()


def fan_out(items: Iterable, consumers: list[Callable[[Iterable], Any]], depth: int = 4) -> None:
    """Feeds every item of ``items`` to every consumer, each running in its own thread behind a queue of
    ``depth`` items, so one pass of the model feeds several files without holding the stream in memory.

    The first error, of the loop over ``items`` or of a consumer, stops every consumer (raised from its
    input, so an atomic writer leaves no file) and is raised here.
    """
    queues: list[queue.Queue] = [queue.Queue(maxsize=depth) for _ in consumers]
    errors: list[BaseException] = []

    def stream(q: queue.Queue) -> Iterator:
        while (item := q.get()) is not _END:
            if isinstance(item, _Stopped):
                raise item
            yield item

    def work(consume: Callable[[Iterable], Any], q: queue.Queue) -> None:
        try:
            consume(stream(q))
        except BaseException as e:  # noqa: B036 -- handed to the main thread, which raises it
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=cq, daemon=True) for cq in zip(consumers, queues, strict=True)
    ]
    for t in threads:
        t.start()

    def send(item: object) -> None:
        for q, t in zip(queues, threads, strict=True):
            while t.is_alive():  # a consumer that failed takes nothing more
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    try:
        for item in items:
            if errors:
                break
            send(item)
    except BaseException:
        send(_Stopped("prediction stopped"))
        for t in threads:
            t.join()
        raise
    send(_Stopped("another output failed") if errors else _END)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# --------------------------------------------------------------------------------------------- the recipe


def run(cfg: DictConfig) -> float | None:
    text = cfg.get("text")
    if text and any(p for p in (cfg.get("eval_files") or {}).values()):
        raise ConfigError("give text=<file> or eval_files.<task>=<file>, not both", key="text")
    model, tokenizer, train_cfg = load_model(cfg.ckpt)
    if text:
        inputs = [read_raw_text(str(text), str(cfg.get("tokenize") or "whitespace"), model.tasks, tokenizer)]
    else:
        inputs = read_inputs(input_files(cfg, model.tasks, train_cfg), model.tasks, tokenizer)
    out = job_dir(cfg)
    folder, progress = out / PREDICTIONS, bool(cfg.trainer.get("enable_progress_bar", True))
    plans = [(inp, sinks(inp, model.tasks, folder)) for inp in inputs]  # file names checked too
    # Every input is read and checked: only now is anything written.
    model.final_decode = True  # DEP: MST/Eisner repair of ill-formed argmax trees, as the test scores use
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    model.to("cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu")
    scores, records = {}, []
    for inp, files in plans:
        gold = {n for n, s in inp.splits.items() if inp.raw is None and _labelled(s.sentences)}
        metrics = {n: model.tasks[n].new_metric() for n in gold}
        fan_out(
            predict_stream(model, tokenizer, inp, cfg.batch, metrics=metrics, progress=progress),
            [w for _, w in files],
        )
        written = [p for p, _ in files] + write_gold(inp, model.tasks, folder)
        for name, metric in metrics.items():
            key = name if name not in scores else f"{name}:{Path(inp.path).stem}"
            scores[key] = {**metric.compute(), "file": inp.path, "sentences": len(inp.sentences)}
        records.append(
            {
                "tasks": list(inp.splits),
                "file": inp.path,
                "sentences": len(inp.sentences),
                "written": [str(p.relative_to(out)) for p in written],
            }
        )
    result = {"mode": "predict", "checkpoint": str(cfg.ckpt), "test": scores, "predictions": records}
    atomic_write_json(out / "metrics.json", result)
    numeric = {n: {k: v for k, v in r.items() if isinstance(v, float)} for n, r in scores.items()}
    listing = "\n".join(f"  {w}" for r in records for w in r["written"])
    table = f"{score_table({'predict': numeric})}\n\n" if numeric else ""
    print(f"\n{table}predictions in {out}:\n{listing}")
    tasks_scored = {n: v for n, v in numeric.items() if n in model.tasks}
    return model.score(tasks_scored) if tasks_scored else None


def _labelled(examples: list) -> bool:
    """Token-level files always carry gold (their readers demand it); a GLUE test file has no labels."""
    return all(getattr(e, "label", True) is not None for e in examples)
