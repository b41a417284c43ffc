"""A worker process dies with its parent, so killing ``medbench run`` never leaves a trial running unseen.

Without this, a worker whose parent is killed (``kill -9``, a closed SSH session, an OOM kill of the parent)
goes on to the end of its trial, its row and lease unwatched, and a rerun trains the trial again.

On Linux the worker asks the kernel for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)`` through
ctypes: no extra dependency, and nothing can delay it). Elsewhere a daemon thread polls the parent with
psutil. Both are armed in the worker itself at start (not in a ``preexec_fn``, which is unsafe in a parent
with threads), and the parent's pid is checked *after* arming: a parent that died before that moment cannot
send the signal any more, so the worker sees that it has been re-parented and stops at once.

Note that Linux sends the signal when the parent *thread* that started the worker ends; medbench starts and
waits for a worker on the same thread (:func:`medbench.orchestration.runner.run_job`), so this is the parent's death.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Exit status of a worker that found its parent gone (EX_SOFTWARE would blame medbench; this is the parent).
PARENT_GONE_EXIT = 75


def _arm_pdeathsig(sig: int) -> bool:
    """Asks Linux to send ``sig`` to this process when its parent dies; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent_pid: int, *, interval_s: float = 0.5) -> bool:
    """Starts a daemon thread that ends this process when ``parent_pid`` is gone; False if it already is.

    The portable fallback for :func:`die_with_parent`. psutil's ``is_running`` compares the process's start
    time, so a pid reused by a newer process does not pass for the parent.
    """
    import psutil

    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return False

    def gone() -> bool:
        try:
            return not parent.is_running() or parent.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    def watch() -> None:
        while not gone():
            threading.Event().wait(interval_s)
        os._exit(PARENT_GONE_EXIT)  # at once: the parent that would record our row is gone

    threading.Thread(target=watch, name="medbench-parent-watch", daemon=True).start()
    return True


def die_with_parent(parent_pid: int, *, force_watcher: bool = False) -> bool:
    """Makes this process end when ``parent_pid`` does; returns False if the parent is already gone.

    Args:
        parent_pid: the pid of the process that started this one.
        force_watcher: use the polling thread even where ``prctl`` is available (for tests).
    """
    if not force_watcher and _arm_pdeathsig(signal.SIGKILL):
        return os.getppid() == parent_pid
    return watch_parent(parent_pid) and os.getppid() == parent_pid
