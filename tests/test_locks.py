"""The run-folder lock with real processes: exclusive, inherited by the worker, gone when its holders are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from medbench.locks import RunFolderLock, RunFolderLockedError

# Takes the lock, starts a "worker" that inherits it (as medbench.orchestration.runner does), prints both pids, waits.
HOLDER = """
import subprocess, sys, time
from medbench.locks import RunFolderLock
lock = RunFolderLock(sys.argv[1]); lock.acquire()
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], pass_fds=lock.fds)
lock.note(worker_pid=worker.pid)
print(worker.pid, flush=True)
time.sleep(600)
"""


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not exit")


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_the_lock_is_held_while_parent_or_worker_lives_and_freed_after(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    worker_pid = int(holder.stdout.readline())
    try:
        with pytest.raises(RunFolderLockedError) as refused:
            RunFolderLock(tmp_path).acquire()
        assert f"pid {holder.pid}" in refused.value.problem and f"pid {worker_pid}" in refused.value.problem

        holder.send_signal(signal.SIGKILL)  # the parent dies with kill -9: its worker still holds the lock
        holder.wait()
        with pytest.raises(RunFolderLockedError):
            RunFolderLock(tmp_path).acquire()
    finally:
        holder.kill()
        os.kill(worker_pid, signal.SIGKILL)
    wait_gone(worker_pid)
    with RunFolderLock(tmp_path) as lock:  # both gone: the kernel dropped the lock, no stale file to clean
        assert lock.fd is not None
        with pytest.raises(RunFolderLockedError, match=f"pid {os.getpid()}"):
            RunFolderLock(tmp_path).acquire()  # exclusive within one process too (another open file)
    RunFolderLock(tmp_path).acquire()


def test_an_unwritable_folder_is_one_clear_error_not_a_traceback(tmp_path):
    from medbench.errors import MedbenchError
    from medbench.locks import download_lock

    not_a_folder = tmp_path / "a-file"  # no one, root included, can create a folder inside a file
    not_a_folder.write_text("")
    with pytest.raises(MedbenchError, match="Cannot write in .*--output"):
        RunFolderLock(not_a_folder / "run").acquire()
    with (
        pytest.raises(MedbenchError, match="Cannot write in .*--root"),
        download_lock(not_a_folder / "x.npz"),
    ):
        pass
