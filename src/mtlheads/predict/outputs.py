"""Where one input's predictions go: the writer of each output file, and the scorers' gold files."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mtlheads.data.conll2012_reader import read_conll2012
from mtlheads.data.conll2012_writer import write_conll2012, write_srl_props
from mtlheads.data.glue_predictions import glue_prediction_name, write_glue
from mtlheads.data.sentence import Sentence
from mtlheads.data.writers import write_conllu, write_iob2, write_ptb
from mtlheads.predict.inputs import Input, task_kind
from mtlheads.tasks.con import ConTask
from mtlheads.tasks.srl import SrlTask

_LAYERS = {"conllu": {"pos", "dep", "ner", "srl"}, "conll": {"con", "srl", "ner"}}  # what the writers take
_NATIVE = {"conllu": write_conllu, "conll": write_conll2012}
Sink = tuple[Path, Callable[[Iterable], Any]]


def _sink(write: Callable, path: Path, project: Callable, **kwargs: Any) -> Sink:
    """``path`` and a consumer of ``(sentence, {task: prediction})`` pairs that writes ``project(s, p)``."""
    return path, lambda items: write(path, (project(s, p) for s, p in items), **kwargs)


def sinks(inp: Input, tasks: Mapping[str, Any], folder: Path) -> list[Sink]:
    """The files one input's prediction stream goes to, each with the writer call consuming the stream."""
    names = list(inp.splits)
    layer = {n: task_kind(n, tasks[n])[1] for n in names}
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
