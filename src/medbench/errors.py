"""Exceptions for mistakes a user can fix.

Every error carries the problem and the fix as separate parts, so the CLI can print one readable line
(and tests can check both) instead of a traceback.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class MedbenchError(Exception):
    """A problem the user can act on: what went wrong and what to do about it."""

    exit_code = 2  # the CLI's exit status: a usage error (a value, a path or a file the user can change)

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}" if fix else problem)


class UnknownDatasetError(MedbenchError, KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


class InvalidSizeError(MedbenchError, ValueError):
    """An image size MedMNIST does not publish."""


class DataFileMissingError(MedbenchError, FileNotFoundError):
    """An expected data file is not on disk."""


class InvalidDataFileError(MedbenchError, ValueError):
    """A data file that is not in the official MedMNIST npz layout."""


class ChecksumError(MedbenchError, ValueError):
    """A file whose checksum does not match the official one."""


class DownloadError(MedbenchError, OSError):
    """A download that could not be completed."""


class ConfigError(MedbenchError, ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""


class WorkerError(MedbenchError):
    """A job run in a child process (:func:`medbench.orchestration.process.run_call`) gave no result.

    ``kind`` is the job's kind; ``returncode`` the child's exit status (negative: the signal that killed
    it; None: it was killed for running past its time); ``stdout`` and ``stderr`` the ends of its output.
    """

    exit_code = 1  # not a usage error: the work itself failed

    def __init__(
        self,
        problem: str,
        fix: str | None = None,
        *,
        kind: str,
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ):
        super().__init__(problem, fix)
        self.kind = kind
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class WorkerJobFailed(WorkerError):
    """The job raised an exception in the child; ``error`` is its one line, ``traceback`` the child's."""

    def __init__(self, problem: str, *, error: str, traceback: str = "", **kwargs):
        super().__init__(problem, **kwargs)
        self.error = error
        self.traceback = traceback


class WorkerDied(WorkerError):
    """The child was killed by a signal or exited with an error before it wrote a result."""


class WorkerTimedOut(WorkerError):
    """The child ran past its time and was killed."""


class WorkerNoResult(WorkerError):
    """The child exited normally but wrote no result (or one that cannot be read)."""


# What to do about an operating-system error, by errno: the CLI prints the error and this as one line.
_OS_FIXES = {
    errno.ENOSPC: "Free some space on that disk, or point medbench at another one "
    "(--output, --store, $MEDBENCH_HOME).",
    errno.EDQUOT: "Free some space within your quota, or point medbench at another disk "
    "(--output, --store, $MEDBENCH_HOME).",
    errno.EACCES: "Make it writable, or choose a folder you can write to (--output, --store, $MEDBENCH_HOME).",
    errno.EPERM: "Make it writable, or choose a folder you can write to (--output, --store, $MEDBENCH_HOME).",
    errno.EROFS: "That file system is read-only: choose a writable folder (--output, --store, $MEDBENCH_HOME).",
    errno.ENOENT: "Check the path.",
    errno.ENOTDIR: "A part of the path is a file, not a folder: check the path.",
    errno.EISDIR: "That is a folder: pass a file.",
    errno.EEXIST: "Remove it or choose another name.",
    errno.ENAMETOOLONG: "Use a shorter path.",
    errno.EMFILE: "Too many open files: raise the limit (ulimit -n) or run fewer trials at once.",
    errno.ENOMEM: "Close other programs or use a smaller batch size or image size.",
}


def did_you_mean(name: str, known: Iterable[str], n: int = 3) -> str:
    """The start of the fix for an unknown name: ``"Did you mean a, b? "`` with the closest of ``known``, or
    "" when none is close."""
    close = difflib.get_close_matches(name, known, n=n)
    return f"Did you mean {', '.join(close)}? " if close else ""


def describe_os_error(err: BaseException) -> str | None:
    """One line for a fault of the environment (disk full, permission denied, ...), or None for anything else.

    Covers :class:`OSError` and SQLite's own I/O errors, which arrive as ``sqlite3.OperationalError``.
    """
    if isinstance(err, OSError) and not isinstance(err, MedbenchError):
        what = err.strerror or str(err) or type(err).__name__
        where = " ".join(f"{name}" for name in (err.filename, err.filename2) if name is not None)
        fix = _OS_FIXES.get(err.errno or -1, "Check the path and the disk, then try again.")
        return f"{what}{': ' + where if where else ''}. {fix}"
    import sqlite3

    if isinstance(err, sqlite3.OperationalError):
        message = str(err)
        for marker, fix in (
            ("full", _OS_FIXES[errno.ENOSPC]),
            ("readonly", _OS_FIXES[errno.EROFS]),
            ("read-only", _OS_FIXES[errno.EROFS]),
            ("unable to open", "Check that the results store's folder exists and is writable (--store)."),
            ("disk i/o", "Check the disk holding the results store (--store), then try again."),
        ):
            if marker in message.lower():
                return f"The results store could not be written: {message}. {fix}"
    return None


def failure_reason(err: BaseException) -> str:
    """One line that says what went wrong, recognising out-of-memory errors from every framework."""
    text = f"{type(err).__name__}: {err}".strip()
    lowered = text.lower()
    if (
        isinstance(err, MemoryError)
        or "out of memory" in lowered
        or "resource_exhausted" in lowered
        or "oom" in lowered.split()
    ):
        return f"out of memory: {text[:300]}"
    if isinstance(err, MedbenchError):
        return str(err)
    return text[:500]
