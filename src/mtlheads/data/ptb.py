"""Penn Treebank token normalisation and bracketed-tree leaf escaping.

The readers return words as they appear in the files (raw UD forms in EWT). Pretrained
encoders and PTB-trained tools expect one spelling per symbol, so by default the readers map
PTB escapes (``-LRB-``, ````` ``) and typographic variants (curly quotes, dashes) onto
plain ASCII with :func:`normalize_token`.
"""

from __future__ import annotations

import unicodedata

# Whole-token PTB escapes: only meaningful as complete tokens ("-LRB-x" is not a bracket).
_ESCAPES = {
    "-LRB-": "(",
    "-RRB-": ")",
    "-LCB-": "{",
    "-RCB-": "}",
    "-LSB-": "[",
    "-RSB-": "]",
    "``": '"',
    "''": '"',
}

# Character-level variants: these also occur inside words (don’t, 1990–2000, mama`s).
_CHARS = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "‘": "'",
        "’": "'",
        "`": "'",
        "–": "--",
        "—": "--",
    }
)


def normalize_token(word: str) -> str:
    """Map one token to its normalised PTB spelling.

    Args:
        word: A token as read from a file.

    Returns:
        ``-LRB-``/``-RRB-``/``-LCB-``/``-RCB-``/``-LSB-``/``-RSB-`` become the bracket itself,
        ````` `` and ``''`` become ``"``; inside any token curly double and angle quotes become
        ``"``, curly single quotes and backticks ``'``, and en/em dashes ``--``.
    """
    if word in _ESCAPES:
        return _ESCAPES[word]
    out = word.translate(_CHARS)
    # A pair of typographic single quotes (‘’ or ’’) is a double quote once translated.
    return '"' if out == "''" else out


def is_punct(word: str) -> bool:
    """True when the (normalised) token is non-empty and every character is Unicode punctuation (P*).

    Args:
        word: A token, raw or normalised (``-LRB-`` counts as punctuation).
    """
    word = normalize_token(word)
    return bool(word) and all(unicodedata.category(ch).startswith("P") for ch in word)


# nltk's tree reader treats brackets as structure and a backslash as an escape character,
# so leaves holding them must be spelled differently inside a bracketed tree string.
_LEAF_ESCAPES = (("\\", "-BSL-"), ("(", "-LRB-"), (")", "-RRB-"))


def escape_leaf(word: str) -> str:
    """Spell a word or POS tag so it can be a leaf of a bracketed tree string (``(`` -> ``-LRB-``).

    Args:
        word: A word or POS tag.
    """
    for raw, esc in _LEAF_ESCAPES:
        word = word.replace(raw, esc)
    return word


def unescape_leaf(leaf: str) -> str:
    """Invert :func:`escape_leaf` (``-LRB-`` -> ``(``, ``-RRB-`` -> ``)``, ``-BSL-`` -> ``\\``).

    Args:
        leaf: A leaf of a tree string stored in :attr:`Sentence.tree`.
    """
    for raw, esc in reversed(_LEAF_ESCAPES):
        leaf = leaf.replace(esc, raw)
    return leaf
