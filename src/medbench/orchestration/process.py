"""The parent's side of every child process medbench starts: ``python -m medbench.orchestration.worker JOB.json``.

One protocol for all of them: the parent writes a job file (a JSON object whose ``kind`` names a job of
:data:`medbench.orchestration.worker.JOBS`), starts the worker on it in a fresh interpreter (:func:`start_worker`:
one command, one environment, a lifeline to the parent) and waits. A job comes in one of two shapes:

- *recorded* (``train``, ``bench``, ``selftest``): the worker records the run's row in the results store
  itself; :func:`medbench.orchestration.runner.run_job` starts it, and records what the worker could not
  (its death by a signal, a timeout).
- *answered* (``reference``, ``export``, ``kernel_peak``, ``describe``, and ``call`` for the test suite):
  the worker calls the job's function with ``job["args"]`` and writes what it returns, as JSON, to the job's
  result file; :func:`call_worker` starts it and returns that result, or raises a
  :class:`~medbench.errors.WorkerError` that says whether the job failed, or the child died, ran past its
  time or wrote no result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from medbench.errors import WorkerDied, WorkerJobFailed, WorkerNoResult, WorkerTimedOut

WORKER_MODULE = "medbench.orchestration.worker"
# How much of a failed child's stdout and stderr its error keeps (the ends: where a traceback is).
OUTPUT_TAIL = 10_000

Environment = Mapping[str, str | None]


def worker_env(env: Environment | None = None) -> dict[str, str]:
    """This process's environment with ``env`` over it; a None value removes that variable."""
    merged = {**os.environ, **{k: v for k, v in (env or {}).items() if v is not None}}
    for name in [k for k, v in (env or {}).items() if v is None]:
        merged.pop(name, None)
    merged["PYTHONUNBUFFERED"] = "1"  # a log or a pipe sees the child's lines as they come
    merged.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not the user's concern
    return merged


def start_worker(
    job_file: str | os.PathLike,
    *,
    env: Environment | None = None,
    stdout: int | IO | None = None,
    stderr: int | IO | None = None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen:
    """Starts ``python -m medbench.orchestration.worker JOB_FILE`` with :func:`worker_env` ``(env)``."""
    piped = subprocess.PIPE in (stdout, stderr)  # read back as text; a framework's odd byte is no error
    return subprocess.Popen(
        [sys.executable, "-m", WORKER_MODULE, str(job_file)],
        env=worker_env(env),
        stdout=stdout,
        stderr=stderr,
        pass_fds=tuple(pass_fds),
        text=piped,
        errors="replace" if piped else None,
    )


def exit_reason(returncode: int) -> str:
    """Why a worker that ended with ``returncode`` left no result, in words."""
    from medbench.lifeline import PARENT_GONE_EXIT
    from medbench.orchestration.worker import LEASE_LOST_EXIT

    if returncode == LEASE_LOST_EXIT:
        return "abandoned: the trial's lease was reclaimed by another process, which runs it now"
    if returncode == PARENT_GONE_EXIT:
        return "the worker found the process that started it gone"
    if returncode >= 0:
        return f"worker exited with code {returncode} before recording a result"
    name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
    hint = " (the system may have run out of memory)" if -returncode == signal.SIGKILL else ""
    return f"worker killed by {name}{hint}"


class WorkerCall:
    """An answered job running in its own worker (see :func:`start_call`); :meth:`result` waits for it."""

    def __init__(self, job: Mapping[str, Any], *, env: Environment | None = None) -> None:
        self.kind = str(job["kind"])
        self._folder = tempfile.TemporaryDirectory(prefix="medbench-job-")
        folder = Path(self._folder.name)
        self._result_file = folder / "result.json"
        # The worker dies with this process (medbench.lifeline), so a killed parent leaves nothing behind.
        # Linux ties that to the thread that starts the worker: start from one that outlives the call.
        job = {**job, "result_file": str(self._result_file), "parent_pid": os.getpid()}
        (folder / "job.json").write_text(json.dumps(job))
        try:
            self.process = start_worker(
                folder / "job.json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except BaseException:
            self._folder.cleanup()
            raise

    def result(self, timeout_s: float | None) -> Any:
        """Waits up to ``timeout_s`` seconds (None: for ever) and returns what the job's function returned.

        A result the job wrote counts even if its process then hung or crashed on the way out (some
        frameworks' teardown does).

        Raises:
            WorkerJobFailed: the job raised; the error says what, ``traceback`` is the child's.
            WorkerTimedOut: the child ran past ``timeout_s`` and was killed.
            WorkerDied: the child was killed by a signal or exited with an error before writing a result.
            WorkerNoResult: the child exited normally but wrote no readable result.
        """
        try:
            try:
                stdout, stderr = self.process.communicate(timeout=timeout_s)
                returncode: int | None = self.process.returncode
            except subprocess.TimeoutExpired:
                self.process.kill()
                stdout, stderr = self.process.communicate()
                returncode = None
            except BaseException:  # an interrupt: the child must not outlive the wait
                self.process.kill()
                self.process.wait()
                raise
            answer = _read_answer(self._result_file)
        finally:
            self._folder.cleanup()
        return _settle(self.kind, answer, returncode, stdout or "", stderr or "", timeout_s)


def start_call(job: Mapping[str, Any], *, env: Environment | None = None) -> WorkerCall:
    """Starts an answered job (``{"kind": ..., "args": {...}}``) in a fresh worker and returns at once, so
    several can run side by side; ``env`` goes over this process's environment (None removes a variable)."""
    return WorkerCall(job, env=env)


def call_worker(job: Mapping[str, Any], *, timeout_s: float | None, env: Environment | None = None) -> Any:
    """Runs an answered job in a fresh worker and returns its result: :func:`start_call` and
    :meth:`WorkerCall.result`, which says what is raised when there is none."""
    return start_call(job, env=env).result(timeout_s)


def _read_answer(path: Path) -> dict[str, Any] | None:
    try:
        answer = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # never written, or cut short (the worker writes it whole and renames it, but still)
    return answer if isinstance(answer, dict) else None


def _settle(
    kind: str,
    answer: dict[str, Any] | None,
    returncode: int | None,
    stdout: str,
    stderr: str,
    timeout_s: float | None,
) -> Any:
    details = {
        "kind": kind,
        "returncode": returncode,
        "stdout": stdout[-OUTPUT_TAIL:],
        "stderr": stderr[-OUTPUT_TAIL:],
    }
    if answer is not None:
        if answer.get("ok"):
            return answer.get("result")
        error = str(answer.get("error") or "no reason given")
        raise WorkerJobFailed(
            f"the {kind} job failed: {error}",
            error=error,
            traceback=str(answer.get("traceback") or ""),
            **details,
        )
    last_words = " ".join(stderr.strip().splitlines()[-3:])[-400:]
    said = f": {last_words}" if last_words else ""
    if returncode is None:
        raise WorkerTimedOut(
            f"the {kind} job timed out after {timeout_s:.0f} s and was killed{said}", **details
        )
    if returncode != 0:
        raise WorkerDied(f"the {kind} job ended without a result: {exit_reason(returncode)}{said}", **details)
    raise WorkerNoResult(
        f"the {kind} job ended without a result: its worker exited normally but wrote none{said}", **details
    )
