"""Data readers for the EWT layers (CoNLL-2012, CoNLL-U, IOB2) and PTB token normalisation."""

from __future__ import annotations

import os
from pathlib import Path

from mtlheads.data.conll2012_reader import read_conll2012
from mtlheads.data.conllu_reader import read_conllu
from mtlheads.data.iob2_reader import iob2_to_spans, read_iob2, spans_to_iob2
from mtlheads.data.ptb import is_punct, normalize_token
from mtlheads.data.sentence import DataFormatError, Sentence

__all__ = [
    "DataFormatError",
    "Sentence",
    "excerpt_dir",
    "find_data_dir",
    "iob2_to_spans",
    "is_punct",
    "normalize_token",
    "read_conll2012",
    "read_conllu",
    "read_iob2",
    "spans_to_iob2",
]


def find_data_dir() -> Path | None:
    """Locate the shared data directory (the one holding ``ewt/``).

    Returns:
        ``$MTLHEADS_DATA_DIR`` if set (as given, even if missing, so a wrong setting is visible),
        else ``<repo root>/../shared/data`` if it exists, else None.
    """
    env = os.environ.get("MTLHEADS_DATA_DIR")
    if env:
        return Path(env)
    # parents: [0] data, [1] mtlheads, [2] src, [3] repository root
    candidate = (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


def excerpt_dir() -> Path:
    """The EWT excerpt shipped with the package (``conll2012/``, ``ud/``, ``ner/`` with train/dev/test)."""
    return Path(__file__).resolve().parents[1] / "resources" / "ewt"
