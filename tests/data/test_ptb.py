"""PTB token normalisation, punctuation test and tree-leaf escaping."""

import pytest

from mtlheads.data import is_punct, normalize_token
from mtlheads.data.ptb import escape_leaf, unescape_leaf


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("-LRB-", "("),
        ("-RRB-", ")"),
        ("-LCB-", "{"),
        ("-RCB-", "}"),
        ("-LSB-", "["),
        ("-RSB-", "]"),
        ("``", '"'),
        ("''", '"'),
        ("`", "'"),
        ("“", '"'),
        ("”", '"'),
        ("„", '"'),
        ("«", '"'),
        ("»", '"'),
        ("‘", "'"),
        ("’", "'"),
        ("–", "--"),
        ("—", "--"),
        ("‘’", '"'),  # two typographic single quotes used as a double quote
        ("don’t", "don't"),
        ("mama`s", "mama's"),
        ("1990–2000", "1990--2000"),
        ("word", "word"),
        ("(", "("),
        ("-LRB-x", "-LRB-x"),  # escapes only count as whole tokens
        ("", ""),
    ],
)
def test_normalize_token(raw: str, norm: str) -> None:
    assert normalize_token(raw) == norm


def test_normalize_is_idempotent() -> None:
    for raw in ["-LRB-", "``", "“", "’", "—", "don’t", "‘’", '"', "--"]:
        once = normalize_token(raw)
        assert normalize_token(once) == once


@pytest.mark.parametrize(
    "word", [".", ",", "!?", "...", "-LRB-", "``", "“", "—", "--", "'", "-", "¿", "#", "@"]
)
def test_is_punct_true(word: str) -> None:
    assert is_punct(word)


@pytest.mark.parametrize("word", ["", "a", "a.", "$", "+", "3", "U.S.", "'s", "%x", "±"])
def test_is_punct_false(word: str) -> None:
    assert not is_punct(word)


@pytest.mark.parametrize(
    ("word", "leaf"), [("(", "-LRB-"), (")", "-RRB-"), ("\\", "-BSL-"), (":-)", ":--RRB-"), ("ok", "ok")]
)
def test_escape_leaf_round_trip(word: str, leaf: str) -> None:
    assert escape_leaf(word) == leaf
    assert unescape_leaf(leaf) == word
