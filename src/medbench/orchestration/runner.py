"""Starts one run in a fresh process and makes sure the store hears how it ended.

The child records success or a Python-level failure itself. What it cannot record (death by a signal, the
kernel's OOM killer, an abort inside a framework's C++ code) the parent records here, so a failed run is a
row with a reason, never a silent gap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.locks import RunFolderLock
from medbench.orchestration.process import exit_reason, start_worker
from medbench.results import ResultsStore, RunRecord

if TYPE_CHECKING:
    from medbench.leases import TrialLeases


def run_job(
    job: dict[str, Any],
    *,
    store_path: str | os.PathLike | None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
    quiet: bool = False,
    lease: TrialLeases | None = None,
    detach: bool = False,
) -> RunRecord:
    """Runs a recorded job (see :mod:`medbench.orchestration.process`) in a child process and returns its
    stored row.

    The job gets a run id before the child starts, so the parent can find (or create) the row whatever
    happens to the child. ``job["start"]`` holds the columns the parent uses if it must record a failure.

    Args:
        lease: the leases of the store in which this process claimed the job's trial (under the job's run
            id): the worker takes the lease over and heartbeats it while it runs. Releasing it is the
            caller's part, once this returns.
        detach: let the worker outlive this process; by default it is killed when this process dies
            (see :mod:`medbench.lifeline`), so no trial goes on unwatched.
    """
    store = ResultsStore(store_path)
    run_id = job.setdefault("run_id", str(uuid.uuid4()))
    # One process trains in a run folder at a time: a refusal comes before the store or the folder is
    # touched, and the worker inherits the lock (pass_fds), so it is held while either lives (medbench.locks).
    lock = RunFolderLock(job["run_dir"]) if job.get("run_dir") else None
    if lock is not None:
        lock.acquire()
    job["store"] = str(store.path)
    if not detach:
        job["parent_pid"] = os.getpid()
    if lease is not None:
        job["lease"] = {"heartbeat_s": lease.heartbeat_s, "stale_after_s": lease.stale_after_s}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="medbench-job-", delete=False) as handle:
        json.dump(job, handle)
    child_env = dict(env or {})
    log = None
    if quiet:
        # A quiet child (under a live grid display) writes its output to a log beside its run, not the terminal.
        child_env["MEDBENCH_QUIET"] = "1"
        log_dir = Path(job.get("run_dir") or tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"worker-{run_id[:8]}.log", "w")  # noqa: SIM115 (closed below)
    interrupted = False
    try:
        process = start_worker(
            handle.name, env=child_env, stdout=log, stderr=log, pass_fds=lock.fds if lock is not None else ()
        )
        if lock is not None:
            lock.note(worker_pid=process.pid)
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            returncode = None
        except KeyboardInterrupt:
            # The child got the same SIGINT from the terminal: let it record "interrupted" and exit, then
            # stop here too (a grid must not go on to its next trial).
            interrupted = True
            try:
                returncode = process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # the signal reached only this process (not from a terminal)
                process.send_signal(signal.SIGINT)
                returncode = process.wait()
    finally:
        Path(handle.name).unlink(missing_ok=True)
        if log is not None:
            log.close()
        if lock is not None:
            lock.release()
    record = _settle(store, job, run_id, returncode, timeout_s)
    if interrupted:
        raise KeyboardInterrupt
    return record


def _settle(
    store: ResultsStore, job: dict[str, Any], run_id: str, returncode: int | None, timeout_s
) -> RunRecord:
    reason = f"timed out after {timeout_s:.0f} s" if returncode is None else exit_reason(returncode)
    try:
        record = store.get_run(run_id)
    except KeyError:
        store.start_run(run_id=run_id, **job["start"])
        store.fail_run(run_id, reason)
        return store.get_run(run_id)
    if record.status == "running":
        store.fail_run(run_id, reason)
        record = store.get_run(run_id)
    return record
