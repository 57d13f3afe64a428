"""Matplotlib set-up and figure files shared by every figure of the report package."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mtlheads.utils.io import atomic_write


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: str | Path, dpi: int = 150) -> list[Path]:
    """Writes ``fig`` as ``<out>.png`` and ``<out>.pdf`` (atomically: never half a file), then closes it."""
    out = Path(out)
    written = []
    for ext in ("png", "pdf"):
        save = partial(fig.savefig, format=ext, bbox_inches="tight", dpi=dpi)
        written.append(atomic_write(out.with_name(f"{out.name}.{ext}"), save, binary=True))
    pyplot().close(fig)
    return written
