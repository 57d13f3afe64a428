"""Prediction inputs: files in each task's format, or raw text, read and checked before any output."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mtlheads.build import read_split
from mtlheads.data.conllu_reader import read_text
from mtlheads.data.glue_reader import GLUE_TASKS
from mtlheads.data.ptb import normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence
from mtlheads.errors import ConfigError
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.dep import DepTask
from mtlheads.tasks.glue import GlueTask
from mtlheads.tasks.ner import NerTask
from mtlheads.tasks.pos import PosTask
from mtlheads.tasks.srl import SrlTask
from mtlheads.training.data import TaskSplit, subword_lengths

# task class -> (format of its input file, its layer in that format's writer)
_KINDS = {PosTask: ("conllu", "pos"), DepTask: ("conllu", "dep"), NerTask: ("iob2", "ner")}
_KINDS |= {ConTask: ("conll", "con"), SrlTask: ("conll", "srl"), GlueTask: ("glue", "glue")}
_TOKENIZERS = ("whitespace", "nltk")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # C0 controls other than tab: no tool reads them back


def task_kind(name: str, task: Any) -> tuple[str, str]:
    """(format of ``task``'s input files, its layer in that format's writer)."""
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
        fmt, layer = task_kind(name, tasks[name])
        for path in paths:
            split = read_split(tasks[name], path, tokenizer, key=f"eval_files.{name}")
            same = (i for i in inputs if i.fmt == fmt and Path(i.path).resolve() == Path(path).resolve())
            target = next(
                (i for i in same if layer not in {task_kind(n, tasks[n])[1] for n in i.splits}), None
            )
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
    layers = {n: task_kind(n, t)[1] for n, t in tasks.items() if task_kind(n, t)[0] != "glue"}
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
