"""What a user error is, and how a run that fails or is interrupted ends.

A **user error** is a failure whose fix is in the user's hands: a malformed data file, a config value that
cannot work, a checkpoint that is not one, an output dir that cannot be written, a disk that is full. It
is defined here and nowhere else (:func:`is_user_error`):

* :class:`UserError` and its subclasses, raised by our own validation: :class:`ConfigError` (names the
  config key and value), :class:`mtlheads.data.sentence.DataFormatError` (names file:line),
  :class:`MissingFileError`, :class:`CheckpointError` (names the checkpoint file), :class:`OutputError`
  (names the file that could not be written);
* :class:`mtlheads.encoder.load.EncoderNotAvailableError` (hub model neither cached nor downloadable).

A user error ends the run with one line on stderr, ``error: <what is wrong, where, how to fix it>``, and
exit status 1 (2 for an unavailable encoder, as before). Its traceback goes to the run's log file and to
``failure.json``, and to the terminal too with ``debug=true`` or ``HYDRA_FULL_ERROR=1``. Every other
exception is an internal error (a bug): it shows its traceback. A run stopped by SIGTERM or SIGINT (Ctrl-C)
exits with 143 or 130 (128 + the signal number), after Lightning has stopped training at a batch boundary.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

#: Exit status of a run that failed with a user error.
EXIT_USER_ERROR = 1


class UserError(Exception):
    """Base of the errors our validation raises: the message says what is wrong, where, and the fix.

    Attributes:
        exit_status: the process exit status when this error ends a run.
        failure_type: the type name ``failure.json`` records (None: the class name); subclasses that
            replace a built-in error keep its name there, so reports and scripts see the same type.
    """

    exit_status: ClassVar[int] = EXIT_USER_ERROR
    failure_type: ClassVar[str | None] = None


class ConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the key (and the value).

    Args:
        message: the whole message; it must name the key, e.g. ``"mode=stl trains one task but ..."``.
        key: the dotted config key (``"batch.max_tokens"``).
    """

    failure_type = "ValueError"

    def __init__(self, message: str, *, key: str):
        self.key = key
        super().__init__(message)

    @classmethod
    def for_value(cls, key: str, value: Any, problem: str, fix: str | None = None) -> ConfigError:
        """``<key>=<value>: <problem>; <fix>``, the value as it would be typed on the command line."""
        return cls(f"{key}={_typed(value)}: {problem}" + (f"; {fix}" if fix else ""), key=key)


def _typed(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class MissingFileError(UserError, FileNotFoundError):
    """A file the config names does not exist."""

    failure_type = "FileNotFoundError"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded (missing, truncated, not ours, or refused as unsafe)."""


# errno values that mean "this output cannot be written here", each with the fix to suggest.
_OUTPUT_ERRNOS = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space under your disk quota",
    errno.EFBIG: "the file is larger than this file system (or ulimit -f) allows",
    errno.EROFS: "choose a writable out_dir",
    errno.EACCES: "check the permissions, or choose another out_dir",
    errno.EPERM: "check the permissions, or choose another out_dir",
}


class OutputError(UserError, OSError):
    """A file the run writes could not be written: disk full, quota, read-only file system, permissions.

    Args:
        path: the file being written.
        cause: the ``OSError`` the write raised.
    """

    def __init__(self, path: str | os.PathLike, cause: OSError):
        self.path, self.cause = Path(path), cause
        reason = cause.strerror or str(cause)
        fix = _OUTPUT_ERRNOS.get(cause.errno or 0, "check the disk and the out_dir")
        # The files are written atomically: what was there before is still whole.
        super().__init__(
            cause.errno,
            f"{path}: cannot write it: {reason}; {fix}, then run again (resume=true keeps the "
            "progress saved so far)",
        )

    def __str__(self) -> str:
        return str(self.args[1])


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputError | None:
    """An :class:`OutputError` for ``exc`` if it (or what it was raised from) is a write refused by the
    system, e.g. the ``OSError(ENOSPC)`` behind torch's "unexpected pos" error on a full disk; else None."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OutputError):
            return cause
        if isinstance(cause, OSError) and cause.errno in _OUTPUT_ERRNOS:
            return OutputError(path, cause)
        cause = cause.__cause__ or cause.__context__
    return None


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a user error (see the module docstring); everything else is a bug."""
    if isinstance(exc, UserError):
        return True
    load = sys.modules.get("mtlheads.encoder.load")  # not imported: it cannot have raised its error
    return load is not None and isinstance(exc, load.EncoderNotAvailableError)


def exit_status(exc: BaseException) -> int:
    """The exit status a run ends with when ``exc`` (a user error) stops it."""
    if isinstance(exc, UserError):
        return exc.exit_status
    return 2  # EncoderNotAvailableError: the status mtlheads has always used for it


def failure_type(exc: BaseException) -> str:
    """The type name ``failure.json`` records for ``exc``."""
    return getattr(exc, "failure_type", None) or type(exc).__name__


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (messages of other libraries may span several)."""
    text = str(exc) or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def debug_requested(cfg: Any = None) -> bool:
    """Whether user errors show their traceback too: ``debug=true`` or ``HYDRA_FULL_ERROR=1``."""
    if _user_full_error():
        return True
    try:
        return bool(cfg is not None and cfg.get("debug"))
    except Exception:  # a config that cannot even be read: no debug
        return False


# mtlheads.cli sets HYDRA_FULL_ERROR=1 itself, so that Hydra hands it every error to report instead of
# printing them; the user's own setting (which means "debug") is kept in this variable, which processes the
# run starts (DDP ranks, joblib workers) inherit too.
_FULL_ERROR_ENV, _USER_FULL_ERROR_ENV = "HYDRA_FULL_ERROR", "MTLHEADS_USER_HYDRA_FULL_ERROR"


def _user_full_error() -> bool:
    user = os.environ.get(_USER_FULL_ERROR_ENV)
    return (user if user is not None else os.environ.get(_FULL_ERROR_ENV)) == "1"


@contextmanager
def hydra_reports_to_us() -> Iterator[None]:
    """Sets ``HYDRA_FULL_ERROR=1`` while the body runs, so that Hydra re-raises every error (config
    composition, the job's own) instead of printing it; the user's setting still means "debug"."""
    saved = {k: os.environ.get(k) for k in (_FULL_ERROR_ENV, _USER_FULL_ERROR_ENV)}
    if saved[_USER_FULL_ERROR_ENV] is None:  # not already inside a run that set it (a DDP rank)
        os.environ[_USER_FULL_ERROR_ENV] = saved[_FULL_ERROR_ENV] or ""
    os.environ[_FULL_ERROR_ENV] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def report(exc: BaseException, *, debug: bool = False, file=None) -> None:
    """Prints a user error as one line (after its traceback with ``debug``), any other as a traceback."""
    file = file or sys.stderr
    if not is_user_error(exc) or debug:
        traceback.print_exception(exc, file=file)
    if is_user_error(exc):
        print(f"error: {one_line(exc)}", file=file)
    file.flush()


# ---- SIGTERM and SIGINT --------------------------------------------------------------------------


class Interrupted(BaseException):
    """Raised by the SIGTERM handler outside Lightning's training loop (which stops at a batch boundary)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


_received: list[int] = []


def received_signal() -> int | None:
    """The SIGTERM/SIGINT that arrived in the :func:`catch_signals` block running now, or None."""
    return _received[-1] if _received else None


def _on_sigterm(signum: int, frame: Any) -> None:
    _received.append(signum)
    # While Lightning trains it has its own handler installed, which calls this one too: it stops the loop
    # at the next batch boundary (and raises SIGTERMException there). Outside it, stop here.
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        raise Interrupted(signum)


def _on_sigint(signum: int, frame: Any) -> None:
    _received.append(signum)
    raise KeyboardInterrupt  # Python's own behaviour; Lightning turns it into a graceful stop


@contextmanager
def catch_signals() -> Iterator[None]:
    """Records SIGTERM/SIGINT while the body runs (see :func:`received_signal`); restores the handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    _received.clear()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        _received.clear()  # a later run (tests run several in one process) starts uninterrupted
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def signal_exit_status(signum: int) -> int:
    """128 + the signal number, as a shell reports a process the signal ended (143 SIGTERM, 130 SIGINT)."""
    return 128 + int(signum)
