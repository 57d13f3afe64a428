"""mode=predict text=<file>: raw text in, one CoNLL-U file with every token-level task plus a tree file out.

A tiny random BERT trained for a few batches on the shipped excerpt (all five tasks) tags a text file with
empty and blank lines, tabs, non-ASCII words and a line far longer than the encoder's 512 positions.
"""

from __future__ import annotations

import json
from pathlib import Path

import conllu
import pytest
import torch
from conftest import predict_cfg

from mtlheads.checkpoint import load_model
from mtlheads.data import read_conllu
from mtlheads.data.prediction_formats import read_conllu_predictions
from mtlheads.data.ptb import escape_leaf
from mtlheads.data.sentence import DataFormatError
from mtlheads.data.trees import spans_to_tree, to_string, to_tree
from mtlheads.errors import ConfigError
from mtlheads.modes import predict
from mtlheads.predict.inputs import read_raw_text
from mtlheads.predict.stream import predict_stream

LONG = " ".join(["internationalization", "of", "Zoë's", "東京", "café"] * 90)  # 450 words, > 512 subwords
LINES = [
    "The quick brown fox jumps over the lazy dog .",
    "",
    "   ",
    "Zoë visited 東京 and São Paulo 😀 .",
    LONG,
    "\tTabs\tand  runs of  spaces ",
    "Last line , no newline",
]
KEPT = [1, 4, 5, 6, 7]  # 1-based numbers of the non-empty lines


@pytest.fixture(scope="module")
def tiny_run(tiny_ewt5_run) -> Path:
    return tiny_ewt5_run


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "input.txt"
    path.write_text("\n".join(LINES), encoding="utf-8")  # no newline at the end
    return path


@pytest.fixture(scope="module")
def loaded(tiny_run) -> tuple:
    """The checkpoint with its NER decoder biased towards an entity type: the tiny model finds no entity on
    its own, and the NER column of the output should be exercised."""
    model, tokenizer, cfg = load_model(tiny_run)
    with torch.no_grad():
        model.decoders["ner"].biaffine.weight[1, -1, -1] += 10.0  # label 1 (a type) on every span
    return model, tokenizer, cfg


@pytest.fixture(scope="module")
def tagged(tiny_run, loaded, text_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tagged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(predict, "load_model", lambda _: loaded)
        predict.run(predict_cfg(tiny_run, out, f"text={text_file}"))
    return out


def test_raw_text_gives_one_conllu_with_every_token_task_and_a_tree_file(
    tagged, tiny_run, loaded, text_file
) -> None:
    folder = tagged / "predictions"
    assert sorted(p.name for p in folder.iterdir()) == ["input.con.ptb", "input.pos+ner+dep+srl.conllu"]
    metrics = json.loads((tagged / "metrics.json").read_text())
    assert metrics["test"] == {} and metrics["predictions"][0]["sentences"] == len(KEPT)
    back = read_conllu_predictions(folder / "input.pos+ner+dep+srl.conllu", normalize=False)
    assert [s.meta["sent_id"] for s in back] == [str(n) for n in KEPT]  # the input's line numbers
    assert [s.words for s in back] == [LINES[n - 1].split() for n in KEPT]  # raw forms, non-ASCII kept
    assert [s.meta["text"] for s in back] == [" ".join(LINES[n - 1].split()) for n in KEPT]
    assert len(back[2].words) == 450
    model, tokenizer, _ = loaded
    assert len(tokenizer(LONG.split(), is_split_into_words=True)["input_ids"]) > 512  # the sliding window ran
    # a second pass of the same stream: the file holds exactly these predictions
    model.final_decode = True
    inp = read_raw_text(str(text_file), "whitespace", model.tasks, tokenizer)
    cfg = predict_cfg(tiny_run, tagged)
    preds = [p for _, p in predict_stream(model, tokenizer, inp, cfg.batch, metrics={}, progress=False)]
    assert [s.pos for s in back] == [p["pos"] for p in preds]
    assert [(s.heads, s.rels) for s in back] == [tuple(p["dep"]) for p in preds]
    assert [s.entities for s in back] == [p["ner"] for p in preds]
    assert [s.srl for s in back] == [sorted(p["srl"]) for p in preds]
    assert any(p["ner"] for p in preds) and any(p["srl"] for p in preds)  # the MISC layers are exercised
    # DEP's final decoding gives trees: the strict reader (one root, no cycle) accepts every sentence
    assert [s.heads for s in read_conllu(folder / "input.pos+ner+dep+srl.conllu")] == [s.heads for s in back]
    parsed = conllu.parse((folder / "input.pos+ner+dep+srl.conllu").read_text(encoding="utf-8"))
    assert [len(s) for s in parsed] == [len(s.words) for s in back]
    # trees: one line per sentence, the words as leaves, the predicted tags as preterminals
    trees = (folder / "input.con.ptb").read_text(encoding="utf-8").splitlines()
    expected = [
        to_string(spans_to_tree(p["con"], s.words, p["pos"])) for s, p in zip(back, preds, strict=True)
    ]
    assert trees == expected
    assert [to_tree(t).leaves() for t in trees] == [[escape_leaf(w) for w in s.words] for s in back]
    assert [[tag for _, tag in to_tree(t).pos()] for t in trees] == [p["pos"] for p in preds]


def test_nltk_tokenizer_keeps_the_text_and_marks_spaceafter(tiny_run, tmp_path) -> None:
    text = "Hello, world! It's “quoted” (really)."
    (tmp_path / "t.txt").write_text(text + "\n\nZoë's café.\n", encoding="utf-8")
    predict.run(predict_cfg(tiny_run, tmp_path, f"text={tmp_path / 't.txt'}", "tokenize=nltk"))
    path = tmp_path / "predictions" / "t.pos+ner+dep+srl.conllu"
    first, second = conllu.parse(path.read_text(encoding="utf-8"))
    forms = [t["form"] for t in first]
    assert forms == ["Hello", ",", "world", "!", "It", "'s", "“", "quoted", "”", "(", "really", ")", "."]
    rebuilt = "".join(t["form"] + ("" if (t["misc"] or {}).get("SpaceAfter") == "No" else " ") for t in first)
    assert rebuilt.strip() == first.metadata["text"] == text
    assert (first.metadata["sent_id"], second.metadata["sent_id"]) == ("1", "3")
    assert [t["form"] for t in second] == ["Zoë", "'s", "café", "."]


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        (b"fine line\nfine too\nbad \xff byte\n", 3, "not UTF-8"),
        (b"fine line\nbell \x07 here\n", 2, "control character U\\+0007"),
    ],
)
def test_a_bad_text_line_fails_with_file_and_line_before_anything_is_written(
    tiny_run, tmp_path, content: bytes, line: int, what: str
) -> None:
    (tmp_path / "in.txt").write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(DataFormatError, match=rf"in\.txt:{line}: {what}"):
        predict.run(predict_cfg(tiny_run, out, f"text={tmp_path / 'in.txt'}"))
    assert not out.exists() or not any(out.iterdir())


def test_text_options_are_checked(tiny_run, tmp_path) -> None:
    (tmp_path / "in.txt").write_text("a b\n", encoding="utf-8")
    text = f"text={tmp_path / 'in.txt'}"
    with pytest.raises(ConfigError, match="tokenize=spacy"):
        predict.run(predict_cfg(tiny_run, tmp_path, text, "tokenize=spacy"))
    with pytest.raises(ConfigError, match="not both"):
        predict.run(predict_cfg(tiny_run, tmp_path, text, "eval_files.pos=x.conllu"))
    (tmp_path / "empty.txt").write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no sentence"):
        predict.run(predict_cfg(tiny_run, tmp_path, f"text={tmp_path / 'empty.txt'}"))
    assert not (tmp_path / "predictions").exists()
