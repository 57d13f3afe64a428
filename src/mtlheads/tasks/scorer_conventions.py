"""The official scorers' counting rules, re-stated in Python, applied to prediction files.

The field's scorers are not Python packages we can depend on (EVALB is C, ``srl-eval.pl`` is Perl,
``conll18_ud_eval.py`` is a script outside any package), so their conventions are re-stated here from their
documented behaviour and pinned rule by rule on hand-checked fixtures in
``tests/tasks/test_scorer_conventions.py``. They read the files the ``mtlheads.data`` writers write (and
the gold files in the same formats), so a test can score our written predictions the way the official tool
would and compare with our built-in metrics. For NER the official convention is an installable package
(``seqeval``, in the ``test`` extra), used directly by the tests.

* :func:`conll18_from_files`: UAS/LAS of two CoNLL-U files as ``conll18_ud_eval.py`` computes them with
  the same tokenization (every word, DEPREL up to its first ``:``).
* :func:`evalb_collins`, :func:`evalb_collins_files`: bracket counts of ``evalb -p COLLINS.prm``.
* :func:`srl_eval`, :func:`read_props`, :func:`srl_eval_files`: argument counts of the CoNLL-2005
  ``srl-eval.pl`` on props files.
"""

from __future__ import annotations

import re
from pathlib import Path

from mtlheads.data.conllu_reader import read_lines

Frames = list[tuple[int, list[tuple[int, int, str]]]]

# -------------------------------------------------------------------------------- CoNLL 2018 UD eval


def conll18_from_files(gold_path: str | Path, pred_path: str | Path) -> dict[str, float]:
    """UAS/LAS the way conll18_ud_eval.py reads two CoNLL-U files with the same tokenization: every word
    line (integer id), HEAD compared, DEPREL compared up to its first ':'.

    Raises:
        ValueError: The two files' word forms differ (the script refuses files whose texts differ).
    """

    def words(path: str | Path) -> list[list[str]]:
        return [
            line.split("\t")
            for line in read_lines(path)
            if line and not line.startswith("#") and line.split("\t")[0].isdigit()
        ]

    gold, pred = words(gold_path), words(pred_path)
    if [g[1] for g in gold] != [p[1] for p in pred]:
        raise ValueError(f"{gold_path} and {pred_path} have different words")
    heads = [g[6] == p[6] for g, p in zip(gold, pred, strict=True)]
    labels = [
        h and g[7].split(":")[0] == p[7].split(":")[0] for h, g, p in zip(heads, gold, pred, strict=True)
    ]
    n = max(len(gold), 1)
    return {"uas": sum(heads) / n, "las": sum(labels) / n}


# ------------------------------------------------------------------------------- EVALB, COLLINS.prm

COLLINS_DELETE = frozenset({"TOP", "-NONE-", ",", ":", "``", "''", "."})  # COLLINS.prm DELETE_LABEL
COLLINS_EQ = {"PRT": "ADVP"}  # EQ_LABEL ADVP PRT (symmetric in evalb.c)


def _evalb_read(line: str) -> tuple[list[str], list[tuple[int, int, str]]]:
    """evalb.c's read_line: the words not deleted, and every non-terminal bracket (start, end, label).

    ``(LABEL word)`` is a preterminal: no bracket, and its word is dropped when LABEL is in DELETE_LABEL.
    """
    toks = re.findall(r"\(|\)|[^\s()]+", line)
    words: list[str] = []
    found, stack, i = [], [], 0
    while i < len(toks):
        if toks[i] == ")":
            label, start = stack.pop()
            found.append((start, len(words), label))
            i += 1
            continue
        label = toks[i + 1] if toks[i + 1] not in "()" else ""  # "( (S ...))": an empty label
        i += 2 if label else 1
        if toks[i] not in "()" and toks[i + 1] == ")":  # preterminal
            if label not in COLLINS_DELETE:
                words.append(toks[i])
            i += 2
        else:
            stack.append((label, len(words)))
    return words, found


def evalb_collins(gold: str, pred: str) -> tuple[int, int, int]:
    """(matched, gold brackets, predicted brackets) of one sentence as evalb -p COLLINS.prm counts them:
    deleted preterminals vanish with their word, zero-width brackets are dropped, labels are cut at the
    first '-' or '=' (anywhere, even at position 0) and deleted when in DELETE_LABEL, and every gold
    bracket is greedily matched to one unused predicted bracket with the same span and label. A sentence
    whose word sequences differ after deletion is an error sentence and counts nothing."""

    def scored(line: str) -> tuple[list[str], list[tuple[int, int, str]]]:
        words, found = _evalb_read(line)
        out = []
        for start, end, label in found:
            label = re.split(r"[-=]", label, maxsplit=1)[0]
            if start != end and label not in COLLINS_DELETE:
                out.append((start, end, COLLINS_EQ.get(label, label)))
        return words, out

    (gw, gb), (pw, pb) = scored(gold), scored(pred)
    if gw != pw:
        return 0, 0, 0
    unused, matched = list(pb), 0
    for b in gb:
        if b in unused:
            unused.remove(b)
            matched += 1
    return matched, len(gb), len(pb)


def evalb_collins_files(gold_path: str | Path, pred_path: str | Path) -> tuple[int, int, int]:
    """:func:`evalb_collins` summed over two files of one bracketed tree per line (blank lines skipped).

    Raises:
        ValueError: The files hold different numbers of trees.
    """
    gold = [x for x in read_lines(gold_path) if x.strip()]
    pred = [x for x in read_lines(pred_path) if x.strip()]
    if len(gold) != len(pred):
        raise ValueError(f"{gold_path} has {len(gold)} trees, {pred_path} {len(pred)}")
    counts = [evalb_collins(g, p) for g, p in zip(gold, pred, strict=True)]
    return tuple(sum(c[k] for c in counts) for k in range(3))  # type: ignore[return-value]


# ------------------------------------------------------------------------------ CoNLL-2005 srl-eval


def _srl_eval_args(args: list[tuple[int, int, str]]) -> list[dict]:
    """srl-eval.pl's arguments of one prop: phrases in start order (wider first); a C-X phrase joins the
    last X argument (or becomes an X argument when there is none)."""
    out, last = [], {}
    for s, e, role in sorted(args, key=lambda a: (a[0], -a[1])):
        if role.startswith("C-") and role[2:] in last:
            arg = last[role[2:]]
            arg["phrases"].append((s, e))
            arg["end"] = e
            continue
        arg = {"type": role[2:] if role.startswith("C-") else role, "start": s, "end": e, "phrases": [(s, e)]}
        out.append(arg)
        last[arg["type"]] = arg
    return out


def srl_eval(gold: list[Frames], pred: list[Frames]) -> tuple[int, int, int]:
    """(correct, excess, missed) as srl-eval.pl counts them: props paired by predicate position; a
    predicted prop with no gold prop is skipped, a gold prop with no prediction has every argument missed;
    arguments compared by (start, end) of the whole argument, type, and (discontinuous ones) all phrases;
    V is excluded from every count."""
    ok = op = ms = 0
    for g_frames, p_frames in zip(gold, pred, strict=True):
        predicted = dict(p_frames)
        for p, g_args in g_frames:
            index = {(a["start"], a["end"]): a for a in _srl_eval_args(g_args)}
            for a in _srl_eval_args(predicted.get(p, [])):
                g = index.get((a["start"], a["end"]))
                if g is not None and g["type"] == a["type"] and sorted(g["phrases"]) == sorted(a["phrases"]):
                    ok += a["type"] != "V"
                    del index[(a["start"], a["end"])]
                else:
                    op += a["type"] != "V"
            ms += sum(a["type"] != "V" for a in index.values())
    return ok, op, ms


def read_props(path: str | Path) -> list[Frames]:
    """A props file as srl-eval.pl reads it: whitespace columns, the first naming the predicates, then one
    Start-End column per predicate (all phrases, nested ones included)."""
    out: list[Frames] = []
    block: list[list[str]] = []
    for line in [*read_lines(path), ""]:
        if line.strip():
            block.append(line.split())
            continue
        if not block:
            continue
        preds = [i for i, r in enumerate(block) if r[0] != "-"]
        frames = []
        for k, p in enumerate(preds):
            args, open_ = [], []
            for i, r in enumerate(block):
                cell = r[1 + k]
                for label in re.findall(r"\(([^*(]+)", cell):
                    open_.append((label, i))
                for _ in range(cell.count(")")):
                    label, s = open_.pop()
                    args.append((s, i, label))
            frames.append((p, sorted(args)))
        out.append(frames)
        block = []
    return out


def srl_eval_files(gold_path: str | Path, pred_path: str | Path) -> tuple[int, int, int]:
    """:func:`srl_eval` on two props files (:func:`~mtlheads.data.conll2012_writer.write_srl_props`).

    Raises:
        ValueError: The files hold different numbers of sentences.
    """
    gold, pred = read_props(gold_path), read_props(pred_path)
    if len(gold) != len(pred):
        raise ValueError(f"{gold_path} has {len(gold)} sentences, {pred_path} {len(pred)}")
    return srl_eval(gold, pred)


def prf(correct: int, n_pred: int, n_gold: int) -> dict[str, float]:
    """Precision, recall and F1 as fractions (0 where undefined), as both scorers print them."""
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    return {"p": p, "r": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}
