"""Prediction writers: what is written and read back with our readers is exactly what was predicted.

Predictions are the shipped EWT excerpt's gold layers, and perturbed copies of them that differ from gold
(so a writer that copied the gold columns instead of the prediction would fail), written through each
writer and read back with our own readers.
"""

from __future__ import annotations

import os
from pathlib import Path

import conllu
import pytest

from mtlheads.data import excerpt_dir, normalize_token, read_conll2012, read_conllu, read_iob2
from mtlheads.data.conll2012_writer import write_conll2012, write_srl_props
from mtlheads.data.glue_predictions import glue_prediction_name, read_glue_predictions, write_glue
from mtlheads.data.glue_reader import GLUE_TASKS, GlueExample, glue_file, read_glue
from mtlheads.data.prediction_formats import read_conllu_predictions
from mtlheads.data.ptb import escape_leaf
from mtlheads.data.sentence import Sentence
from mtlheads.data.trees import gold_spans, to_string, to_tree
from mtlheads.data.writers import write_conllu, write_iob2, write_ptb
from mtlheads.tasks.scorer_conventions import read_props
from mtlheads.tasks.srl_metric import clean_srl, srl_tuples

EWT = excerpt_dir()
SPLITS = ("dev", "test")


def _all(read, folder: str, ext: str) -> list[Sentence]:
    return [s for split in SPLITS for s in read(EWT / folder / f"{split}.{ext}")]


@pytest.fixture(scope="module")
def ud() -> list[Sentence]:
    return _all(read_conllu, "ud", "conllu")


@pytest.fixture(scope="module")
def ner() -> list[Sentence]:
    return _all(read_iob2, "ner", "iob2")


@pytest.fixture(scope="module")
def ontonotes() -> list[Sentence]:
    return _all(read_conll2012, "conll2012", "gold_conll")


def _both_splits(write, path: Path, sentences: list[Sentence], preds: list) -> None:
    """Write one file from sentences of two input files (the writer switches between sources)."""
    write(path, zip(sentences, preds, strict=True))


# ------------------------------------------------------------------------------- perturbed predictions


def perturb_pos(sentences: list[Sentence]) -> list[list[str]]:
    """Every tag replaced by the next tag of the sorted tag set: every word differs from gold."""
    tags = sorted({t for s in sentences for t in s.pos})
    nxt = dict(zip(tags, tags[1:] + tags[:1], strict=True))
    return [[nxt[t] for t in s.pos] for s in sentences]


def perturb_dep(sentences: list[Sentence]) -> list[tuple[list[int], list[str]]]:
    """A right-branching chain (word i heads word i-1; the last word is the root), relations reversed."""
    n = [len(s.words) for s in sentences]
    return [(list(range(2, k + 1)) + [0], s.rels[::-1]) for k, s in zip(n, sentences, strict=True)]


def perturb_ner(sentences: list[Sentence]) -> list[list[tuple[int, int, str]]]:
    """Types rotated, plus a one-word entity on the last word when it is free."""
    rot = {"PER": "ORG", "ORG": "LOC", "LOC": "PER"}
    out = []
    for s in sentences:
        spans = [(a, b, rot[t]) for a, b, t in s.entities]
        last = len(s.words) - 1
        if all(b < last for _, b, _ in spans):
            spans.append((last, last, "MISC"))
        out.append(spans)
    return out


def perturb_con(sentences: list[Sentence]) -> list[list[tuple[int, int, str]]]:
    """ConTask.decode-style binarised spans of the gold tree with NP relabelled NX."""
    return [[(i, j, lab.replace("NP", "NX")) for i, j, lab in gold_spans(s.tree)] for s in sentences]


def perturb_srl(sentences: list[Sentence]) -> list[list[tuple[int, list]]]:
    """SrlTask.decode-style frames (no V) with ARG0/ARG1 swapped and the last argument dropped (frames
    of two or more), plus a new predicate on the first non-predicate word with a one-word argument."""
    swap = {"ARG0": "ARG1", "ARG1": "ARG0"}
    out = []
    for s in sentences:
        frames = [
            (p, [(a, b, swap.get(r, r)) for a, b, r in args][: max(1, len(args) - 1)])
            for p, args in clean_srl(s.srl)
        ]
        taken = {p for p, _ in frames}
        free = [i for i in range(len(s.words)) if i not in taken]
        if free and len(s.words) > 1:
            q = free[0]
            frames.append(
                (q, [(q + 1, q + 1, "ARGM-TMP") if q + 1 < len(s.words) else (q - 1, q - 1, "ARGM-TMP")])
            )
        out.append(sorted(frames))
    return out


def with_verbs(frames: list[tuple[int, list]]) -> list[tuple[int, list]]:
    """What the CoNLL-2012 reader gives back for decode-style frames: a (V*) on each predicate."""
    return [(p, sorted([*args, (p, p, "V")])) for p, args in sorted(frames)]


# -------------------------------------------------------------------------------------------- CoNLL-U


def test_conllu_gold_predictions_give_back_the_input_file_byte_for_byte(tmp_path: Path) -> None:
    for split in SPLITS:
        gold = read_conllu(EWT / "ud" / f"{split}.conllu")
        out = write_conllu(
            tmp_path / f"{split}.conllu", ((s, {"pos": s.pos, "dep": (s.heads, s.rels)}) for s in gold)
        )
        assert out.read_bytes() == (EWT / "ud" / f"{split}.conllu").read_bytes()


def test_conllu_round_trip_of_perturbed_pos_and_dep(tmp_path: Path, ud: list[Sentence]) -> None:
    pos, dep = perturb_pos(ud), perturb_dep(ud)
    path = tmp_path / "pred.conllu"
    _both_splits(write_conllu, path, ud, [{"pos": p, "dep": d} for p, d in zip(pos, dep, strict=True)])
    back = read_conllu(path)
    assert [s.pos for s in back] == pos
    assert [(s.heads, s.rels) for s in back] == dep
    assert all(b.pos[0] != g.pos[0] for b, g in zip(back, ud, strict=True))  # prediction, not gold
    assert [s.words for s in back] == [s.words for s in ud]
    assert [s.meta for s in back] == [s.meta for s in ud]  # sent_id, doc_id, text, UPOS, lemmas
    # the conllu package reads it too, with the predicted heads
    parsed = conllu.parse(path.read_text(encoding="utf-8"))
    assert [[t["head"] for t in sent if isinstance(t["id"], int)] for sent in parsed] == [h for h, _ in dep]


def test_conllu_keeps_every_other_column_and_comment_line(tmp_path: Path, ud: list[Sentence]) -> None:
    path = tmp_path / "pred.conllu"
    preds = [
        {"pos": p, "dep": d, "ner": e}
        for p, d, e in zip(perturb_pos(ud), perturb_dep(ud), perturb_ner_on(ud), strict=True)
    ]
    _both_splits(write_conllu, path, ud, preds)
    source = [
        x
        for split in SPLITS
        for x in (EWT / "ud" / f"{split}.conllu").read_text(encoding="utf-8").splitlines()
    ]
    written = path.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(source)
    multiword = 0
    for new, old in zip(written, source, strict=True):
        if not old or old.startswith("#"):
            assert new == old
            continue
        a, b = new.split("\t"), old.split("\t")
        if not b[0].isdigit():
            multiword += 1
            assert new == old  # multiword-token lines are copied
            continue
        assert [a[k] for k in (0, 1, 2, 3, 5, 8)] == [b[k] for k in (0, 1, 2, 3, 5, 8)]
        kept = [x for x in a[9].split("|") if not x.startswith("NER=")]  # SpaceAfter=No etc. survive
        assert (kept or ["_"]) == b[9].split("|")
    assert multiword > 0


def perturb_ner_on(sentences: list[Sentence]) -> list[list[tuple[int, int, str]]]:
    """Entity predictions for sentences that have no gold entities (CoNLL-U): every capitalised word."""
    return [[(i, i, "PER") for i, w in enumerate(s.words) if w[:1].isupper()] for s in sentences]


def test_conllu_misc_layers_round_trip_on_raw_sentences(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    raw = [Sentence(words=s.words) for s in ontonotes]  # raw text: words only, no source
    ents, frames = [s.entities for s in ontonotes], perturb_srl(ontonotes)
    path = write_conllu(
        tmp_path / "raw.conllu",
        ((s, {"ner": e, "srl": f}) for s, e, f in zip(raw, ents, frames, strict=True)),
    )
    back = read_conllu_predictions(path)
    assert [s.entities for s in back] == ents
    assert [s.srl for s in back] == frames
    assert [s.words for s in back] == [s.words for s in raw]
    assert all(s.pos is None and s.heads is None and s.rels is None for s in back)  # unknown columns are _
    first = conllu.parse(path.read_text(encoding="utf-8"))[0]
    assert first.metadata["text"] == " ".join(raw[0].words)
    assert all(t["xpos"] is None and t["head"] is None and t["lemma"] == "_" for t in first)


def test_conllu_raw_sentence_without_layers_is_all_underscores(tmp_path: Path) -> None:
    path = write_conllu(tmp_path / "w.conllu", [(Sentence(words=["Hello", "world"]), {})])
    assert path.read_text(encoding="utf-8") == (
        "# text = Hello world\n1\tHello\t_\t_\t_\t_\t_\t_\t_\t_\n2\tworld\t_\t_\t_\t_\t_\t_\t_\t_\n\n"
    )
    back = read_conllu_predictions(path)
    assert back[0].words == ["Hello", "world"]
    assert (back[0].pos, back[0].heads, back[0].entities, back[0].srl) == (None, None, None, None)


def test_conllu_raw_sentence_misc_from_meta(tmp_path: Path) -> None:
    # raw text tokenized with offsets: SpaceAfter=No comes from meta["misc"], our NER item goes after it
    sent = Sentence(words=["Hi", ",", "Zoë"], meta={"text": "Hi, Zoë", "misc": ["SpaceAfter=No", "_", "_"]})
    path = write_conllu(tmp_path / "m.conllu", [(sent, {"ner": [(0, 0, "PER")]})])
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line]
    assert [r[9] for r in rows] == ["SpaceAfter=No|NER=B-PER", "_", "_"]
    assert read_conllu_predictions(path)[0].entities == [(0, 0, "PER")]


# ----------------------------------------------------------------------------------------------- IOB2


def test_iob2_round_trip_of_gold_and_perturbed_entities(tmp_path: Path, ner: list[Sentence]) -> None:
    for name, preds in (("gold", [s.entities for s in ner]), ("perturbed", perturb_ner(ner))):
        path = tmp_path / f"{name}.iob2"
        _both_splits(write_iob2, path, ner, preds)
        back = read_iob2(path)
        assert [s.entities for s in back] == preds
        assert [(s.words, s.meta) for s in back] == [(s.words, s.meta) for s in ner]
        rows = [
            line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line[:1].isdigit()
        ]
        assert {len(r) for r in rows} == {5} and {(r[3], r[4]) for r in rows} == {("-", "-")}
    assert perturb_ner(ner) != [s.entities for s in ner]


def test_iob2_from_conllu_sentences_keeps_raw_forms(tmp_path: Path, ud: list[Sentence]) -> None:
    path = tmp_path / "from_ud.iob2"
    _both_splits(write_iob2, path, ud, perturb_ner_on(ud))
    back = read_iob2(path, normalize=False)
    raw = [x for split in SPLITS for x in read_conllu(EWT / "ud" / f"{split}.conllu", normalize=False)]
    assert [s.words for s in back] == [s.words for s in raw]  # the UD forms, not the normalised words
    assert any(a.words != b.words for a, b in zip(raw, ud, strict=True))
    assert [s.entities for s in back] == perturb_ner_on(ud)


# ------------------------------------------------------------------------------------------------ PTB


def test_ptb_round_trip_of_trees_as_label_spans(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    preds = perturb_con(ontonotes)
    path = tmp_path / "pred.ptb"
    _both_splits(write_ptb, path, ontonotes, preds)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ontonotes)
    assert [list(gold_spans(line)) for line in lines] == preds
    assert all(line.startswith("(TOP ") for line in lines)
    assert preds != [list(gold_spans(s.tree)) for s in ontonotes]
    # gold trees as strings come back as the very strings read
    gold = write_ptb(tmp_path / "gold.ptb", ((s, s.tree) for s in ontonotes))
    assert gold.read_text(encoding="utf-8").splitlines() == [to_string(to_tree(s.tree)) for s in ontonotes]


# ----------------------------------------------------------------------------------------- CoNLL-2012


def test_conll2012_gold_predictions_give_back_the_input_file_byte_for_byte(tmp_path: Path) -> None:
    for split in SPLITS:
        gold = read_conll2012(EWT / "conll2012" / f"{split}.gold_conll")
        layers = ({"srl": s.srl, "con": s.tree, "ner": s.entities} for s in gold)
        out = write_conll2012(tmp_path / f"{split}.conll", zip(gold, layers, strict=True))
        assert out.read_bytes() == (EWT / "conll2012" / f"{split}.gold_conll").read_bytes()


@pytest.mark.slow
def test_gold_round_trip_is_byte_identical_on_the_full_ewt_dev(tmp_path: Path, data_root: Path) -> None:
    # the full dev set has what the excerpt may lack: V spans off the roleset row, C-V, long documents
    ewt = data_root / "ewt"
    gold = read_conll2012(ewt / "conll2012" / "dev.gold_conll")
    layers = ({"srl": s.srl, "con": s.tree, "ner": s.entities} for s in gold)
    out = write_conll2012(tmp_path / "dev.conll", zip(gold, layers, strict=True))
    assert out.read_bytes() == (ewt / "conll2012" / "dev.gold_conll").read_bytes()
    ud = read_conllu(ewt / "ud" / "dev.conllu")
    out = write_conllu(tmp_path / "dev.conllu", ((s, {"pos": s.pos, "dep": (s.heads, s.rels)}) for s in ud))
    assert out.read_bytes() == (ewt / "ud" / "dev.conllu").read_bytes()


def test_conll2012_round_trip_of_perturbed_srl_tree_and_entities(
    tmp_path: Path, ontonotes: list[Sentence]
) -> None:
    srl, con = perturb_srl(ontonotes), perturb_con(ontonotes)
    ents = [[(a, b, t + "X") for a, b, t in s.entities] for s in ontonotes]
    path = tmp_path / "pred.conll"
    preds = [{"srl": f, "con": c, "ner": e} for f, c, e in zip(srl, con, ents, strict=True)]
    _both_splits(write_conll2012, path, ontonotes, preds)
    back = read_conll2012(path)
    assert [s.srl for s in back] == [with_verbs(f) for f in srl]  # exactly the frames, plus (V*)
    assert [clean_srl(s.srl) for s in back] == srl
    assert [srl_tuples(s.srl) for s in back] != [srl_tuples(s.srl) for s in ontonotes]
    assert [list(gold_spans(s.tree)) for s in back] == con
    assert [s.entities for s in back] == ents
    assert [(s.words, s.pos, s.meta["doc_id"]) for s in back] == [
        (s.words, s.pos, s.meta["doc_id"]) for s in ontonotes
    ]
    # predicates: gold rolesets kept where the predicate is a gold one; the raw word and XX for new ones
    raw = read_conll2012(path, normalize=False)
    for b, r, g, f in zip(back, raw, ontonotes, srl, strict=True):
        gold_sets = dict(zip((p for p, _ in g.srl), g.meta["rolesets"], strict=True))
        assert b.meta["rolesets"] == [gold_sets.get(p, f"{r.words[p]}.XX") for p, _ in f]


def test_conll2012_keeps_the_columns_it_does_not_predict(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    path = tmp_path / "srl_only.conll"
    _both_splits(write_conll2012, path, ontonotes, [{"srl": f} for f in perturb_srl(ontonotes)])
    source = [
        x for split in SPLITS for x in (EWT / "conll2012" / f"{split}.gold_conll").read_text().splitlines()
    ]
    written = path.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(source)
    for new, old in zip(written, source, strict=True):
        a, b = new.split(" "), old.split(" ")
        if len(b) < 12:
            assert new == old  # #begin/#end document lines, blank lines
        else:
            assert a[:6] + a[8:11] + a[-1:] == b[:6] + b[8:11] + b[-1:]


def test_conll2012_from_words_only(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    raw = [Sentence(words=s.words) for s in ontonotes[:20]]
    srl = perturb_srl(ontonotes[:20])
    path = write_conll2012(tmp_path / "raw.conll", ((s, {"srl": f}) for s, f in zip(raw, srl, strict=True)))
    back = read_conll2012(path)
    assert [s.srl for s in back] == [with_verbs(f) for f in srl]
    assert back[0].tree == "(TOP" + "".join(f"(- {escape_leaf(w)})" for w in raw[0].words) + ")"  # flat
    assert {s.meta["doc_id"] for s in back} == {"-"} and all(s.entities == [] for s in back)


def test_srl_props_columns_match_the_conll2012_srl_columns(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    srl = perturb_srl(ontonotes)
    props = write_srl_props(tmp_path / "pred.props", zip(ontonotes, srl, strict=True))
    conll = write_conll2012(
        tmp_path / "pred.conll", ((s, {"srl": f}) for s, f in zip(ontonotes, srl, strict=True))
    )
    prop_rows = [line.split(" ") for line in props.read_text(encoding="utf-8").splitlines() if line]
    conll_rows = [
        line.split(" ") for line in conll.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"
    ]
    assert [r[1:] for r in prop_rows] == [r[11:-1] for r in conll_rows]
    assert [r[0] != "-" for r in prop_rows] == [r[7] != "-" for r in conll_rows]
    assert [r[0] for r in prop_rows if r[0] != "-"] == [
        s.words[p] for s, f in zip(ontonotes, srl, strict=True) for p, _ in f
    ]


def test_nested_arguments_round_trip(tmp_path: Path) -> None:
    # an argument inside another one, starting on the same word, and the (V*) inside an argument
    sent = Sentence(words=["the", "rain", "in", "Spain", "falls", "mainly"])
    frames = [
        (1, [(0, 3, "ARG1"), (0, 0, "ARGM-DET"), (2, 3, "ARGM-LOC")]),
        (4, [(0, 3, "ARG1"), (0, 1, "R-ARG1")]),
    ]
    path = write_conll2012(tmp_path / "n.conll", [(sent, {"srl": frames})])
    assert read_conll2012(path)[0].srl == with_verbs(frames)
    rows = [line.split(" ") for line in path.read_text(encoding="utf-8").splitlines()[1:5]]
    assert [r[11:13] for r in rows] == [
        ["(ARG1(ARGM-DET*)", "(ARG1(R-ARG1*"],
        ["(V*)", "*)"],
        ["(ARGM-LOC*", "*"],
        ["*))", "*)"],
    ]
    back = read_conllu_predictions(write_conllu(tmp_path / "n.conllu", [(sent, {"srl": frames})]))
    assert back[0].srl == sorted((p, sorted(a)) for p, a in frames)


def test_srl_props_layout(tmp_path: Path) -> None:
    sent = Sentence(words=["He", "said", "it", "rains"])
    frames = [(3, [(2, 2, "ARG1")]), (1, [(0, 0, "ARG0"), (2, 3, "ARG1")])]
    path = write_srl_props(tmp_path / "p.props", [(sent, frames)])
    assert path.read_text(encoding="utf-8") == "- (ARG0*) *\nsaid (V*) *\n- (ARG1* (ARG1*)\nrains *) (V*)\n\n"


def test_srl_props_predicate_dash_is_not_read_as_no_predicate(tmp_path: Path) -> None:
    # a "-" in the first column means "no predicate here": a predicted predicate on the word "-" must not
    # shift the columns onto the next predicate (found on a real model's predictions)
    sent = Sentence(words=["well", "-", "known", "facts"])
    frames = [(1, [(0, 0, "ARG0")]), (2, [(3, 3, "ARG1")])]
    path = write_srl_props(tmp_path / "p.props", [(sent, frames)])
    assert path.read_text(encoding="utf-8").splitlines()[1].split(" ")[0] == "-DASH-"
    assert read_props(path) == [[(1, [(0, 0, "ARG0"), (1, 1, "V")]), (2, [(2, 2, "V"), (3, 3, "ARG1")])]]


# ----------------------------------------------------------------------------------------------- GLUE


def test_glue_round_trip_for_every_task(tmp_path: Path) -> None:
    for task, spec in GLUE_TASKS.items():
        examples = [GlueExample(text_a=f"s{i}", text_b=None, label=None, guid=str(100 + i)) for i in range(7)]
        if spec["labels"] is None:
            preds: list = [0.0, 5.0, 1 / 3, 2.5, 4.999999, 3.0, 0.125]
            expect: list = preds
        else:
            labels = spec["labels"]
            preds = [
                labels[i % len(labels)] if i % 2 else i % len(labels) for i in range(7)
            ]  # strings, indices
            expect = [labels[i % len(labels)] for i in range(7)]
        path = write_glue(
            tmp_path / glue_prediction_name(task, "test_matched"),
            zip(examples, preds, strict=True),
            task=task,
        )
        assert path.read_text(encoding="utf-8").splitlines()[0] == "index\tprediction"
        assert read_glue_predictions(path, task=task) == [(str(100 + i), e) for i, e in enumerate(expect)]


def test_glue_file_names_follow_the_leaderboard() -> None:
    assert glue_prediction_name("mnli", "test_matched") == "MNLI-m.tsv"
    assert glue_prediction_name("MNLI", "test_mismatched") == "MNLI-mm.tsv"
    assert [glue_prediction_name(t) for t in ("sst2", "STS-B", "cola", "qqp")] == [
        "SST-2.tsv",
        "STS-B.tsv",
        "CoLA.tsv",
        "QQP.tsv",
    ]
    with pytest.raises(ValueError, match="matched"):
        glue_prediction_name("mnli", "test")


def test_glue_rejects_labels_outside_the_task(tmp_path: Path) -> None:
    example = GlueExample(text_a="a", text_b="b", label=None, guid="0")
    for task, pred in (("rte", "neutral"), ("sst2", 2), ("mnli", True), ("stsb", float("nan"))):
        with pytest.raises(ValueError):
            write_glue(tmp_path / "x.tsv", [(example, pred)], task=task)
    assert not (tmp_path / "x.tsv").exists()


def test_glue_real_test_file_indices(tmp_path: Path, data_root: Path) -> None:
    examples = read_glue(glue_file(data_root / "glue", "rte", "test"), task="rte")
    preds = ["entailment" if i % 3 else "not_entailment" for i in range(len(examples))]
    path = write_glue(tmp_path / "RTE.tsv", zip(examples, preds, strict=True), task="rte")
    assert read_glue_predictions(path, task="rte") == [
        (e.guid, p) for e, p in zip(examples, preds, strict=True)
    ]
    assert [e.guid for e in examples[:3]] == ["0", "1", "2"]


# ------------------------------------------------------------------------ non-ASCII, empty, failures


WORDS = ["Zürich", "naïve", "東京", "😀", "—", "“Grüße”", "(", "Ωmega"]


def test_non_ascii_words_round_trip_in_every_format(tmp_path: Path) -> None:
    sent = Sentence(words=WORDS, meta={"sent_id": "ü-1"})
    n = len(WORDS)
    pos, heads, rels = ["NNP"] * n, [0] + [1] * (n - 1), ["root"] + ["dép"] * (n - 1)
    ents, frames = [(0, 0, "LÖC"), (2, 3, "ORG")], [(1, [(0, 0, "ARG0"), (2, 7, "ARG1")])]
    spans = [(0, n, "S"), (0, 1, "NP"), (1, n, "VP")]
    normed = [normalize_token(w) for w in WORDS]

    conllu_path = write_conllu(
        tmp_path / "u.conllu", [(sent, {"pos": pos, "dep": (heads, rels), "ner": ents, "srl": frames})]
    )
    back = read_conllu_predictions(conllu_path)[0]
    assert (back.words, back.pos, back.heads, back.rels, back.entities, back.srl) == (
        normed,
        pos,
        heads,
        rels,
        ents,
        frames,
    )
    assert read_conllu(conllu_path, normalize=False)[0].words == WORDS  # the file holds the words as given
    assert read_conllu(conllu_path)[0].meta["sent_id"] == "ü-1"

    iob = write_iob2(tmp_path / "u.iob2", [(sent, ents)])
    assert read_iob2(iob)[0].entities == ents and read_iob2(iob, normalize=False)[0].words == WORDS

    ptb = write_ptb(tmp_path / "u.ptb", [(sent, spans)])
    line = ptb.read_text(encoding="utf-8").strip()
    assert "Zürich" in line and "-LRB-" in line
    assert (
        line == "(TOP (S (NP (XX Zürich)) (VP (XX naïve) (XX 東京) (XX 😀) (XX —) (XX “Grüße”) "
        "(XX -LRB-) (XX Ωmega))))"
    )

    conll = write_conll2012(tmp_path / "u.conll", [(sent, {"srl": frames, "con": spans, "ner": ents})])
    got = read_conll2012(conll)[0]
    assert (got.words, got.entities, got.srl) == (normed, ents, with_verbs(frames))
    assert list(gold_spans(got.tree)) == list(gold_spans(line))
    for path in (conllu_path, iob, ptb, conll):
        path.read_bytes().decode("utf-8")  # UTF-8 whatever the locale


def test_empty_input_gives_empty_files_that_read_back_empty(tmp_path: Path) -> None:
    assert read_conllu(write_conllu(tmp_path / "e.conllu", [])) == []
    assert read_conllu_predictions(tmp_path / "e.conllu") == []
    assert read_iob2(write_iob2(tmp_path / "e.iob2", [])) == []
    assert read_conll2012(write_conll2012(tmp_path / "e.conll", [])) == []
    assert write_ptb(tmp_path / "e.ptb", []).read_bytes() == b""
    assert write_srl_props(tmp_path / "e.props", []).read_bytes() == b""
    assert read_glue_predictions(write_glue(tmp_path / "e.tsv", [], task="rte"), task="rte") == []


def _good_then_crash(pairs: list):
    yield pairs[0]
    raise RuntimeError("model crashed mid-file")


WRITERS = {
    "conllu": (write_conllu, lambda s: {"pos": s.pos}),
    "iob2": (write_iob2, lambda s: s.entities),
    "ptb": (write_ptb, lambda s: s.tree),
    "conll2012": (write_conll2012, lambda s: {"srl": s.srl}),
    "props": (write_srl_props, lambda s: s.srl),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_failing_writer_leaves_no_partial_file(
    tmp_path: Path, ontonotes: list[Sentence], name: str
) -> None:
    write, pred = WRITERS[name]
    pairs = [(s, pred(s)) for s in ontonotes[:3]]
    target = tmp_path / "out" / f"pred.{name}"
    with pytest.raises(RuntimeError, match="crashed"):
        write(target, _good_then_crash(pairs))
    assert not target.parent.exists() or os.listdir(target.parent) == []

    write(target, pairs)  # a complete file, then a failed rewrite: the old file stays, whole
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="crashed"):
        write(target, _good_then_crash(pairs))
    assert target.read_bytes() == before and os.listdir(target.parent) == [target.name]


def test_a_bad_prediction_midway_leaves_no_file(tmp_path: Path, ud: list[Sentence]) -> None:
    preds = [{"pos": s.pos} for s in ud[:5]]
    preds[3] = {"pos": ud[3].pos[:-1]}  # one tag short
    with pytest.raises(ValueError, match="POS tags"):
        write_conllu(tmp_path / "x.conllu", zip(ud[:5], preds, strict=True))
    assert os.listdir(tmp_path) == []


def test_invalid_predictions_are_rejected(tmp_path: Path, ontonotes: list[Sentence]) -> None:
    s = ontonotes[1]
    cases = [
        (write_conllu, {"tags": s.pos}),  # unknown layer name
        (write_conllu, {"dep": ([99] * len(s.words), s.pos)}),  # head out of range
        (write_conll2012, {"srl": [(4, [(0, 2, "ARG0"), (1, 3, "ARG1")])]}),  # crossing spans
        (write_conll2012, {"srl": [(4, []), (4, [])]}),  # predicate twice
        (write_conll2012, {"ner": [(0, 2, "ORG"), (1, 1, "PER")]}),  # nested entities
        (write_conllu, {"srl": [(4, [(0, 0, "AR|G0")])]}),  # would break MISC
    ]
    for write, pred in cases:
        with pytest.raises(ValueError):
            write(tmp_path / "x", [(s, pred)])
    with pytest.raises(ValueError, match="whitespace"):
        write_conll2012(tmp_path / "x", [(Sentence(words=["New York", "x"]), {})])
    assert os.listdir(tmp_path) == []


def test_a_changed_source_file_is_detected(tmp_path: Path) -> None:
    src = tmp_path / "in.conllu"
    src.write_text((EWT / "ud" / "dev.conllu").read_text(encoding="utf-8"), encoding="utf-8")
    sentences = read_conllu(src)
    src.write_text(src.read_text(encoding="utf-8").replace("\tFrom\t", "\tFROM\t", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="differ"):
        write_conllu(tmp_path / "out.conllu", ((s, {"pos": s.pos}) for s in sentences))
    # a source that is gone: the lines are built from the sentence's fields instead
    src.unlink()
    path = write_conllu(tmp_path / "out.conllu", ((s, {"pos": s.pos}) for s in sentences))
    back = read_conllu(path)
    assert [(s.words, s.pos, s.heads, s.rels, s.meta) for s in back] == [
        (s.words, s.pos, s.heads, s.rels, s.meta) for s in sentences
    ]
