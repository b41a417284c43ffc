"""Inter-process locks: one per download destination, one per run folder.

Downloads use the ``filelock`` package (portable, waits with a timeout): a second process that wants the same
file waits for the first and then finds it verified, instead of both writing one ``.part``.

A run folder is locked with ``fcntl.flock`` directly, for one property ``filelock`` does not offer: the lock
belongs to the open file, so the parent takes it and hands the descriptor to its worker (``pass_fds``). It
is held while either lives, and the kernel drops it when both are gone, however they end (kill -9 included):
a lock can never outlive its run. The lock file names the processes holding it, for the refusal message.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medbench.errors import MedbenchError

RUN_LOCK_FILE = ".lock"
DOWNLOAD_LOCK_TIMEOUT_S = 3600.0  # another process's download of a large file may take this long


class RunFolderLockedError(MedbenchError):
    """A run folder that another medbench process is training in."""


class DownloadLockedError(MedbenchError):
    """A file that another process kept downloading for longer than the wait allows."""


@contextmanager
def download_lock(dest: str | os.PathLike, *, timeout_s: float = DOWNLOAD_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Holds ``<dest>.lock`` while this process downloads ``dest``; the file goes when the lock does."""
    import filelock

    dest = Path(dest)
    path = dest.with_name(dest.name + ".lock")
    lock = filelock.FileLock(path, timeout=timeout_s)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise DownloadLockedError(
            f"Another process has been downloading {dest} for more than {timeout_s:.0f} s.",
            f"Wait for it to finish, or stop it and delete {dest.name}.lock and {dest.name}.part.",
        ) from None
    except OSError as err:
        raise _unwritable(
            dest.parent, err, "a data folder you can write to (--root or $MEDBENCH_DATA_ROOT)"
        ) from None
    try:
        yield
    finally:
        # removed while still held: a process waiting on this inode sees it unlinked and locks a new file
        # instead (filelock checks), so no lock file is left beside the data
        path.unlink(missing_ok=True)
        lock.release()


def _unwritable(folder: Path, err: OSError, instead: str) -> MedbenchError:
    return MedbenchError(f"Cannot write in {folder} ({err.strerror or err}).", f"Choose {instead}.")


class RunFolderLock:
    """An exclusive lock on a run folder, taken without waiting (see the module docstring).

    Use as a context manager; :attr:`fd` is the descriptor to pass to a child that should hold it too.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RUN_LOCK_FILE
        self.fd: int | None = None
        self._record: dict = {}

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows has no flock: run folders go unlocked there
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _unwritable(
                self.run_dir, err, "an output folder you can write to (--output or $MEDBENCH_HOME)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderLockedError(
                f"{self.run_dir} is in use by {self._holder()}.",
                "Wait for that run to finish (or stop it), then resume it with `medbench train --resume`.",
            ) from None
        self.fd = fd
        self._record = {}
        self.note(pid=os.getpid(), host=socket.gethostname())

    def note(self, **holders: int | str) -> None:
        """Records who holds the lock (this process, and its worker once started) for the refusal message."""
        if self.fd is None:
            return
        self._record.update(holders)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(self._record).encode(), 0)

    @property
    def fds(self) -> tuple[int, ...]:
        """The descriptors a child process must inherit to hold the lock too (none when unlocked)."""
        return () if self.fd is None else (self.fd,)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the lock goes once the worker's copy is closed too
            self.fd = None

    def __enter__(self) -> RunFolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _read(self) -> dict:
        try:
            record = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _holder(self) -> str:
        record = self._read()
        pid, worker = record.get("pid"), record.get("worker_pid")
        if pid is None:
            return "another process"
        where = f" on {record['host']}" if record.get("host") not in (None, socket.gethostname()) else ""
        also = f" (its worker: pid {worker})" if worker else ""
        return f"medbench process pid {pid}{where}{also}"
