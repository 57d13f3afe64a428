"""Readers: exact fields on hand-written files, located errors on malformed ones, and the EWT data."""

from __future__ import annotations

from pathlib import Path

import nltk
import pytest

from mtlheads.data import (
    DataFormatError,
    excerpt_dir,
    find_data_dir,
    iob2_to_spans,
    read_conll2012,
    read_conllu,
    read_iob2,
    spans_to_iob2,
)
from mtlheads.data.iob2_reader import IOB2Error
from mtlheads.data.ptb import escape_leaf


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replace(lines: list[str], lineno: int, new: str | None) -> list[str]:
    """Copy of ``lines`` with 1-based line ``lineno`` replaced (or deleted when ``new`` is None)."""
    out = list(lines)
    if new is None:
        del out[lineno - 1]
    else:
        out[lineno - 1] = new
    return out


def assert_error(read, path: Path, line: int | None) -> None:
    with pytest.raises(DataFormatError) as info:
        read(path)
    assert path.name in str(info.value)
    assert info.value.line == line
    if line is not None:
        assert f"{path.name}:{line}:" in str(info.value)


# ----------------------------------------------------------------------------- CoNLL-U

CONLLU = [
    "# newdoc id = d1",  # 1
    "# sent_id = s1",  # 2
    "1\tJohn\tJohn\tPROPN\tNNP\t_\t2\tnsubj\t2:nsubj\t_",  # 3
    "2\tsmiled\tsmile\tVERB\tVBD\t_\t0\troot\t0:root\t_",  # 4
    "3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t2:punct\t_",  # 5
    "",  # 6
    "# sent_id = s2",  # 7
    "1-2\tDon’t\t_\t_\t_\t_\t_\t_\t_\t_",  # 8: multiword token, not a word
    "1\tDo\tdo\tAUX\tVBP\t_\t3\taux\t3:aux\t_",  # 9
    "2\tn’t\tnot\tPART\tRB\t_\t3\tadvmod\t3:advmod\t_",  # 10
    "3\tgo\tgo\tVERB\tVB\t_\t0\troot\t0:root\t_",  # 11
    "3.1\twent\tgo\tVERB\tVBD\t_\t_\t_\t0:root\t_",  # 12: empty node, not a word
    "4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t3:punct\t_",  # 13
]


def test_conllu_fields(tmp_path: Path) -> None:
    s1, s2 = read_conllu(write(tmp_path, "a.conllu", CONLLU))
    assert s1.words == ["John", "smiled", "."]
    assert (s1.pos, s1.heads, s1.rels) == (["NNP", "VBD", "."], [2, 0, 2], ["nsubj", "root", "punct"])
    assert s1.meta["upos"] == ["PROPN", "VERB", "PUNCT"]
    assert (s1.meta["sent_id"], s1.meta["doc_id"], s1.source) == ("s1", "d1", f"{tmp_path / 'a.conllu'}:1")
    assert s2.words == ["Do", "n't", "go", "."]
    assert (s2.heads, s2.meta["sent_id"], s2.meta["doc_id"]) == ([3, 3, 0, 3], "s2", "d1")
    assert s2.source.endswith("a.conllu:7")
    assert read_conllu(tmp_path / "a.conllu", normalize=False)[1].words[1] == "n’t"


@pytest.mark.parametrize(
    ("lineno", "new", "error_line"),
    [
        (4, "2\tsmiled\tsmile\tVERB\tVBD\t_\t0\troot\t0:root", 4),  # 9 columns
        (4, "2\tsmiled\tsmile\tVERB\tVBD\t_\t0\troot\t0:root\t_\textra", 4),  # 11 columns
        (4, "2\tsmiled\tsmile\tVERB\tVBD\t_\tx\troot\t0:root\t_", 4),  # non-integer head
        (4, "2\tsmiled\tsmile\tVERB\tVBD\t_\t_\troot\t0:root\t_", 4),  # missing head
        (5, "3\t.\t.\tPUNCT\t.\t_\t4\tpunct\t2:punct\t_", 5),  # head > n
        (11, "3\tgo\tgo\tVERB\tVB\t_\t-1\troot\t0:root\t_", 11),  # head < 0
        (5, "4\t.\t.\tPUNCT\t.\t_\t2\tpunct\t2:punct\t_", 5),  # id skips 3
        (8, "1-x\tDon’t\t_\t_\t_\t_\t_\t_\t_\t_", 8),  # conllu's own error (bad range id)
    ],
)
def test_conllu_errors(tmp_path: Path, lineno: int, new: str, error_line: int) -> None:
    assert_error(read_conllu, write(tmp_path, "bad.conllu", replace(CONLLU, lineno, new)), error_line)


def test_conllu_empty_sentence_and_missing_file(tmp_path: Path) -> None:
    assert_error(read_conllu, write(tmp_path, "bad.conllu", [*CONLLU, "", "# sent_id = s3"]), 15)
    assert_error(read_conllu, write(tmp_path, "bad2.conllu", ["# sent_id = s0", "", *CONLLU]), 1)
    assert_error(read_conllu, tmp_path / "missing.conllu", None)


# ----------------------------------------------------------------------------- IOB2

IOB2 = [
    "# sent_id = a",  # 1
    "1\tNew\tB-LOC\t-\t-",  # 2
    "2\tYork\tI-LOC\t-\t-",  # 3
    "3\tis\tO\t-\t-",  # 4
    "4\tbig\tO\t-\t-",  # 5
    "",  # 6
    "# sent_id = b",  # 7
    "1\tJohn\tB-PER",  # 8: 3 columns are enough
    "2\tSmith\tI-PER",  # 9
    "3\tmet\tO",  # 10
    "4\tAcme\tB-ORG",  # 11
    "5\t”\tO",  # 12
]


def test_iob2_fields(tmp_path: Path) -> None:
    a, b = read_iob2(write(tmp_path, "a.iob2", IOB2))
    assert (a.words, a.entities, a.meta["sent_id"]) == (["New", "York", "is", "big"], [(0, 1, "LOC")], "a")
    assert b.words == ["John", "Smith", "met", "Acme", '"']
    assert b.entities == [(0, 1, "PER"), (3, 3, "ORG")]
    assert b.source.endswith("a.iob2:7")
    assert read_iob2(tmp_path / "a.iob2", normalize=False)[1].words[4] == "”"


@pytest.mark.parametrize(
    ("lineno", "new"),
    [
        (4, "3\tis\tX-LOC\t-\t-"),  # bad tag
        (4, "3\tis\tB-\t-\t-"),  # bad tag
        (2, "1\tNew\tI-LOC\t-\t-"),  # I- at sentence start
        (5, "4\tbig\tI-LOC\t-\t-"),  # I- after O
        (3, "2\tYork\tI-PER\t-\t-"),  # I-PER continuing a LOC
        (3, "2\tYork"),  # too few columns
        (3, "3\tYork\tI-LOC\t-\t-"),  # index skips 2
        (9, "1\tSmith\tI-PER"),  # index restarts
    ],
)
def test_iob2_errors(tmp_path: Path, lineno: int, new: str) -> None:
    assert_error(read_iob2, write(tmp_path, "bad.iob2", replace(IOB2, lineno, new)), lineno)


def test_iob2_empty_sentence_and_missing_file(tmp_path: Path) -> None:
    assert_error(read_iob2, write(tmp_path, "bad.iob2", [*IOB2, "", "# sent_id = c"]), 14)
    assert_error(read_iob2, tmp_path / "missing.iob2", None)


def test_iob2_span_conversion() -> None:
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    spans = [(0, 1, "PER"), (3, 3, "LOC"), (4, 5, "LOC")]
    assert iob2_to_spans(tags) == spans
    assert spans_to_iob2(spans, 6) == tags
    assert iob2_to_spans([]) == [] and spans_to_iob2([], 2) == ["O", "O"]
    with pytest.raises(IOB2Error) as info:
        iob2_to_spans(["O", "I-PER"])
    assert info.value.index == 1
    for bad in ([(0, 1, "PER"), (1, 2, "LOC")], [(2, 3, "PER")], [(1, 0, "PER")]):
        with pytest.raises(ValueError):
            spans_to_iob2(bad, 3)


# ----------------------------------------------------------------------------- CoNLL-2012


def row(i: int, word: str, pos: str, bit: str, ne: str = "*", pred: str = "- -", *srl: str) -> str:
    return " ".join(["doc", "0", str(i), word, pos, bit, pred, "-", "-", ne, *srl, "-"])


# Sentence 1: two predicates, R-ARG0, one-word NE. Sentence 2: C-ARG1, two-word NE.
S1 = [
    row(0, "John", "NNP", "(TOP(S(NP(NP*)", "(PERSON)", "- -", "(ARG0*)", "(ARG0*"),
    row(1, ",", ",", "*", "*", "- -", "*", "*"),
    row(2, "who", "WP", "(SBAR(WHNP*)", "*", "- -", "(R-ARG0*)", "*"),
    row(3, "left", "VBD", "(S(VP*)))", "*", "leave 01", "(V*)", "*"),
    row(4, ",", ",", "*)", "*", "- -", "*", "*)"),
    row(5, "smiled", "VBD", "(VP*)", "*", "smile 01", "*", "(V*)"),
    row(6, ".", ".", "*))", "*", "- -", "*", "*"),
]
S2 = [  # lines 10-18 of CONLL: row i is on line 10 + i
    row(0, "New", "NNP", "(TOP(S(NP*", "(LOC*", "- -", "(ARG1*", "(ARG1*"),
    row(1, "York", "NNP", "*)", "*)", "- -", "*)", "*)"),
    row(2, ",", ",", "(PRN*", "*", "- -", "*", "*"),
    row(3, "he", "PRP", "(S(NP*)", "*", "- -", "(ARG0*)", "*"),
    row(4, "said", "VBD", "(VP*))", "*", "say 01", "(V*)", "*"),
    row(5, ",", ",", "*)", "*", "- -", "*", "*"),
    row(6, "is", "VBZ", "(VP*", "*", "be 01", "(C-ARG1*", "(V*)"),
    row(7, "big", "JJ", "(ADJP*))", "*", "- -", "*)", "(ARG2*)"),
    row(8, ".", ".", "*))", "*", "- -", "*", "*"),
]
S3 = [  # second document: brackets and a backslash as words, no predicates
    row(0, "-LRB-", "-LRB-", "(TOP(X*"),
    row(1, "hi", "UH", "*"),
    row(2, "\\", "NFP", "*"),
    row(3, ")", "-RRB-", "*))"),
]
CONLL = ["#begin document (doc); part 000", *S1, "", *S2, "", "#end document"]
CONLL += ["#begin document (doc2); part 001", *S3, "", "#end document"]


def test_conll2012_fields(tmp_path: Path) -> None:
    s1, s2, s3 = read_conll2012(write(tmp_path, "a.gold_conll", CONLL))
    assert s1.words == ["John", ",", "who", "left", ",", "smiled", "."]
    assert s1.pos == ["NNP", ",", "WP", "VBD", ",", "VBD", "."]
    assert (
        s1.tree
        == "(TOP(S(NP(NP(NNP John))(, ,)(SBAR(WHNP(WP who))(S(VP(VBD left))))(, ,))(VP(VBD smiled))(. .)))"
    )
    assert s1.entities == [(0, 0, "PERSON")]
    assert s1.srl == [
        (3, [(0, 0, "ARG0"), (2, 2, "R-ARG0"), (3, 3, "V")]),
        (5, [(0, 4, "ARG0"), (5, 5, "V")]),
    ]
    assert s1.meta == {"doc_id": "doc", "part": 0, "sent_index": 0, "rolesets": ["leave.01", "smile.01"]}
    assert s1.source.endswith("a.gold_conll:2") and s2.source.endswith("a.gold_conll:10")
    assert s2.entities == [(0, 1, "LOC")]
    assert s2.srl == [
        (4, [(0, 1, "ARG1"), (3, 3, "ARG0"), (4, 4, "V"), (6, 7, "C-ARG1")]),
        (6, [(0, 1, "ARG1"), (6, 6, "V"), (7, 7, "ARG2")]),
    ]
    assert s2.meta["sent_index"] == 1
    assert s3.words == ["(", "hi", "\\", ")"] and (s3.srl, s3.entities) == ([], [])
    assert s3.tree == "(TOP(X(-LRB- -LRB-)(UH hi)(NFP -BSL-)(-RRB- -RRB-)))"
    assert (s3.meta["doc_id"], s3.meta["part"]) == ("doc2", 1)
    for s in (s1, s2, s3):
        assert nltk.Tree.fromstring(s.tree).leaves() == [escape_leaf(w) for w in s.words]
    raw = read_conll2012(tmp_path / "a.gold_conll", normalize=False)[2]
    assert raw.words[0] == "-LRB-" and raw.tree == s3.tree


def edit(lineno: int, **changes: str) -> list[str]:
    """CONLL with columns of line ``lineno`` changed, by 0-based index: ``c5="*)"`` sets the parse bit."""
    parts = CONLL[lineno - 1].split()
    for key, value in changes.items():
        parts[int(key[1:])] = value
    return replace(CONLL, lineno, " ".join(parts))


def drop_last_srl(lineno: int) -> list[str]:
    parts = CONLL[lineno - 1].split()
    return replace(CONLL, lineno, " ".join(parts[:-2] + parts[-1:]))


DOC = "#begin document (d); part 000"


@pytest.mark.parametrize(
    ("lines", "error_line"),
    [
        (drop_last_srl(11), 11),  # column count differs from the sentence's first row
        ([DOC, "d 0 0 Hi UH (TOP*) - - - - *", "", "#end document"], 2),  # 11 columns: too few
        (edit(12, c2="3"), 12),  # word number out of sequence
        (edit(18, c5="*)))"), 18),  # parse bits: ')' closes nothing
        (edit(17, c5="(ADJP*)"), 10),  # parse bits: TOP (line 10) never closed
        (edit(12, c5="(PRN"), 12),  # parse bit without '*'
        ([DOC, "d 0 0 Hi UH (TOP*) - - - - * -", "d 0 1 yo UH (TOP*) - - - - * -", "", "#end document"], 2),
        (edit(12, c10="*)"), 12),  # NE: ')' closes nothing
        (edit(11, c10="*"), 10),  # NE: LOC (line 10) never closed
        (edit(11, c10="(ORG*)"), 11),  # nested NE
        (edit(17, c11="*"), 16),  # SRL: C-ARG1 (line 16) never closed
        (edit(13, c12="*)"), 13),  # SRL: ')' closes nothing
        (edit(13, c12="(ARG0"), 13),  # SRL: bad cell
        (edit(14, c6="-", c7="-"), 10),  # 1 predicate for 2 SRL columns
        ([CONLL[0], "", *CONLL[1:]], 2),  # blank line right after #begin document: empty sentence
        ([*CONLL[:9], "", *CONLL[9:]], 10),  # two blank lines: empty sentence
        (CONLL[1:], 1),  # sentence before #begin document
        (CONLL[:-1], len(CONLL) - 1),  # last document never closed
        ([DOC, *S3, "", DOC], 7),  # #begin document inside a document
        ([DOC, "#end document"], 1),  # empty document
        (["#end document"], 1),  # #end without #begin
    ],
)
def test_conll2012_errors(tmp_path: Path, lines: list[str], error_line: int) -> None:
    assert_error(read_conll2012, write(tmp_path, "bad.gold_conll", lines), error_line)


def test_conll2012_missing_file(tmp_path: Path) -> None:
    assert_error(read_conll2012, tmp_path / "missing.gold_conll", None)


# ----------------------------------------------------------------------------- EWT: excerpt and full data

SPLITS = ("train", "dev", "test")
UNER_TO_CONLL = {"PER": "PERSON", "ORG": "ORG", "LOC": "LOC"}  # how build_ewt.py wrote the NE column


def check_ewt_split(root: Path, split: str) -> int:
    """Read one split in all three formats, check they hold the same sentences; return the count."""
    conll = read_conll2012(root / "conll2012" / f"{split}.gold_conll")
    ud = read_conllu(root / "ud" / f"{split}.conllu")
    ner = read_iob2(root / "ner" / f"{split}.iob2")
    assert len(conll) == len(ud) == len(ner)
    for c, u, n in zip(conll, ud, ner, strict=True):
        assert c.words == u.words == n.words, c.source
        assert u.meta["sent_id"] == n.meta["sent_id"], u.source
        assert c.entities == [(s, e, UNER_TO_CONLL[t]) for s, e, t in n.entities], c.source
        tree = nltk.Tree.fromstring(c.tree)
        assert tree.label() == "TOP" and tree.pos() == list(
            zip([escape_leaf(w) for w in c.words], [escape_leaf(p) for p in c.pos], strict=True)
        ), c.source
        assert len(c.srl) == len(c.meta["rolesets"])
    return len(conll)


@pytest.mark.parametrize("split", SPLITS)
def test_excerpt_formats_agree(split: str) -> None:
    root = excerpt_dir()
    n = check_ewt_split(root, split)
    assert 90 <= n <= {"train": 300, "dev": 100, "test": 100}[split]
    assert (root / "LICENSE").is_file() and (root / "ATTRIBUTION.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("split", "count"), [("train", 12_523), ("dev", 1_967), ("test", 2_058)])
def test_full_ewt(data_root: Path, split: str, count: int) -> None:
    assert check_ewt_split(data_root / "ewt", split) == count


def test_find_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MTLHEADS_DATA_DIR", str(tmp_path))
    assert find_data_dir() == tmp_path
    monkeypatch.delenv("MTLHEADS_DATA_DIR")
    found = find_data_dir()
    assert found is None or (found.is_dir() and found.name == "data" and found.parent.name == "shared")


def test_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.conllu"
    path.write_bytes(("\ufeff" + "\r\n".join(CONLLU) + "\r\n").encode("utf-8"))
    assert [s.meta["sent_id"] for s in read_conllu(path)] == ["s1", "s2"]
