"""What the notebooks share: the repository root, the saved runs and where figures go."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def repo_root() -> Path:
    """The checkout holding docs/runs/ (a notebook may run from notebooks/ or from the top)."""
    here = Path.cwd()
    return next(p for p in (here, *here.parents) if (p / "docs" / "runs").is_dir())


def out_dir() -> Path:
    """Where a notebook writes its figures: $MTLHEADS_NOTEBOOK_OUT, else a fresh temporary folder."""
    out = Path(os.environ.get("MTLHEADS_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="mtlheads-notebook-"))
    out.mkdir(parents=True, exist_ok=True)
    return out
