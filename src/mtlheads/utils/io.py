"""Atomic file writes (a reader never sees a half-written metrics file or checkpoint), and the one place
that unpickles torch files (weights-only unless the user trusts the file).

A write the system refuses (disk full, quota, read-only, permissions) raises
:class:`mtlheads.errors.OutputError` naming the file, also when torch hides the cause behind its own
serialisation error; the file that was there before is left whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from mtlheads.errors import CheckpointError, output_error


def atomic_write(path: str | os.PathLike, write: Callable[[IO], Any], *, binary: bool = False) -> Path:
    """Calls ``write(f)`` on a temp file in ``path``'s directory, fsyncs it, then renames it over ``path``.

    The rename is atomic, so a reader (or a resumed run) sees either the old file or the whole new one; a
    crash mid-write leaves no partial file behind.

    Raises:
        OutputError: the system refused the write (disk full, quota, read-only file system, permissions).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        refused = output_error(path, e) if isinstance(e, Exception) else None
        if refused is not None and refused is not e:
            raise refused from e
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file in the same directory and a rename."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), binary=True)


# Whether this process may load torch files that need full unpickling (config key trust_checkpoint): set
# by mtlheads.cli around a run through trusting(); read by every load, ours and Lightning's (resume, the best
# checkpoint's evaluation, through mtlheads.training.checkpointing.AtomicCheckpointIO).
_trust = False


@contextmanager
def trusting(trust: bool) -> Iterator[None]:
    """Within the body, :func:`load_torch_file` unpickles anything when ``trust`` (else weights only)."""
    global _trust
    previous, _trust = _trust, bool(trust)
    try:
        yield
    finally:
        _trust = previous


def load_torch_file(path: str | os.PathLike, *, trust: bool | None = None, map_location: Any = "cpu") -> Any:
    """``torch.load(path)``, weights-only unless trusted; errors name the file.

    A weights-only load unpickles tensors, containers and plain values only, so a crafted file cannot run
    code. Trusting allows anything, for files you made yourself.

    Args:
        path: the file.
        trust: unpickle anything; None: as :func:`trusting` says (config key ``trust_checkpoint``).
        map_location: as for ``torch.load``.

    Raises:
        CheckpointError: not a file, unreadable (truncated, corrupt, not a torch file), or holding objects a
            weights-only load refuses.
    """
    import pickle

    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(
            path, map_location=map_location, weights_only=not (_trust if trust is None else trust)
        )
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        refused = [line for line in lines if "GLOBAL" in line.upper().split()]
        if refused:  # the file names a class or function to call: exactly what weights-only loading blocks
            raise CheckpointError(
                f"{path}: refused to load: it holds objects a weights-only load does not allow "
                f"({refused[0]}); if you made this file yourself and trust it, give trust_checkpoint=true"
            ) from None
        reason = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt, or not a torch file?): {reason}"
        ) from None
    except (
        Exception
    ) as e:  # torch's loaders raise all sorts (RuntimeError, EOFError, KeyError...) on bad bytes
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {_first_reason(e)}"
        ) from None


def _first_reason(exc: BaseException) -> str:
    """The first sentence of a (torch) error message, which may run over many lines of advice."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = (lines[0] if lines else "").split(". ")[0]
    # torch's RuntimeErrors read well alone; a bare KeyError says "101".
    return first if isinstance(exc, RuntimeError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
