"""The child process of every job medbench runs apart: ``python -m medbench.orchestration.worker JOB.json``.

The parent writes a job file (its ``kind``, and what that kind needs) and starts this module in a fresh
interpreter (:mod:`medbench.orchestration.process`), so imports, compilation caches and thread settings never
leak between frameworks and the cold start is real. The kind names a function in :data:`JOBS`, imported only
when a job of that kind runs: the worker never imports a framework its job does not need.

A job is one of two shapes (:mod:`medbench.orchestration.process` has the parent's side of each):

- *recorded*: ``fn(job) -> exit status``. The job records its own row in the results store; if the worker
  dies without doing so (a segfault, the kernel's OOM killer), the parent records the failure.
- *answered* (the job has a ``result_file``): ``fn(**job["args"])`` returns a JSON-able result, which the
  worker writes to that file as ``{"ok": true, "result": ...}``, or ``{"ok": false, "error": ...,
  "traceback": ...}`` if the function raised. ``call`` is answered only: it runs ``job["target"]``, a
  ``module:function`` of the test suite (``tests.``), so the tests' framework checks use this protocol too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Read as the worker starts, before any job work (hence no more imports above, not even typing): a
# benchmark's cold start goes from the parent's spawn to here (interpreter start-up) and on to the first
# prediction.
_STARTED_AT = time.time()

# kind -> "module:function", imported when a job of that kind runs; the shape each has (see above).
JOBS: dict[str, str] = {
    "train": "medbench.training.job:run_training_job",  # recorded
    "bench": "medbench.bench.cell:run_bench_job",  # recorded: one benchmark cell
    # recorded: training img/s of one config (medbench tune, benchmarks/bench_train.py)
    "train_probe": "medbench.bench.train_probe:run_probe_job",
    "selftest": "medbench.orchestration.worker:selftest",  # recorded
    "reference": "medbench.bench.artifacts:make_reference",  # answered
    "export": "medbench.bench.artifacts:export",  # answered
    "kernel_peak": "medbench.bench.artifacts:kernel_peak",  # answered
    "describe": "medbench.frameworks.describe:measure",  # answered
}
# The package whose functions a ``call`` job may name: medbench's own jobs are the registered kinds above.
CALLABLE_PREFIX = "tests."


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m medbench.orchestration.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    job.setdefault("worker_started_at", _STARTED_AT)
    if job.get("parent_pid") is not None:  # absent when the parent detached this worker on purpose
        from medbench.lifeline import PARENT_GONE_EXIT, die_with_parent

        if not die_with_parent(job["parent_pid"], force_watcher=bool(job.get("watch_parent"))):
            print("the process that started this worker is gone; not starting", file=sys.stderr)
            return PARENT_GONE_EXIT
    if job.get("lease") and not _hold_lease(job):
        print("this trial's lease was reclaimed by another process; not starting", file=sys.stderr)
        return LEASE_LOST_EXIT
    if job.get("result_file"):
        return _answer(job)
    kind = job["kind"]
    if kind not in JOBS:
        print(f"unknown job kind {kind!r}; known: {', '.join(JOBS)}", file=sys.stderr)
        return 2
    return _load(JOBS[kind])(job)


def _load(entry: str):
    """The function ``module:function`` names, its module imported now."""
    import importlib

    module, _, name = entry.partition(":")
    if not name:
        raise ValueError(f"{entry!r} is not 'module:function'")
    return getattr(importlib.import_module(module), name)


def _answering(job: dict):
    kind = job["kind"]
    if kind == "call":
        target = str(job.get("target", ""))
        if not target.startswith(CALLABLE_PREFIX):
            raise ValueError(
                f"a call job runs a function of the test suite ({CALLABLE_PREFIX}...), not {target!r}; "
                "register medbench's own jobs in medbench.orchestration.worker.JOBS"
            )
        return _load(target)
    if kind not in JOBS:
        raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOBS)}, call")
    return _load(JOBS[kind])


def _answer(job: dict) -> int:
    """Runs an answered job and writes its result file, whole or not at all (written beside, then renamed)."""
    import os
    import traceback

    try:
        answer, status = json.dumps({"ok": True, "result": _answering(job)(**job.get("args", {}))}), 0
    except Exception as err:  # noqa: BLE001  (every failure is the parent's to report)
        from medbench.errors import failure_reason

        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        error = " ".join(failure_reason(err).split())
        answer, status = json.dumps({"ok": False, "error": error, "traceback": trace[-8000:]}), 1
    path = Path(job["result_file"])
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(answer)
    os.replace(partial, path)
    return status


# Exit status of a worker whose trial lease is no longer its own (another process runs the trial now).
LEASE_LOST_EXIT = 76


def _hold_lease(job: dict) -> bool:
    """Takes over the trial lease the parent claimed and heartbeats it from a thread while this process
    runs; False if the lease is gone already.

    Should another process reclaim the lease meanwhile (no heartbeat reached the store in time, e.g. this
    host was suspended), it has already marked this run abandoned and runs the trial itself: this worker
    then stops at once rather than finish a duplicate.
    """
    import os

    from medbench.leases import Heartbeat, TrialLeases
    from medbench.results import ResultsStore

    leases = TrialLeases(ResultsStore(job["store"]), stale_after_s=job["lease"].get("stale_after_s"))
    if not leases.take_over(job["run_id"]):
        return False

    def lost(run_id: str) -> None:
        print(f"the lease of run {run_id} was reclaimed by another process; stopping", file=sys.stderr)
        os._exit(LEASE_LOST_EXIT)

    heartbeat = Heartbeat(leases, interval_s=job["lease"].get("heartbeat_s"), on_lost=lost)
    heartbeat.add(job["run_id"])
    heartbeat.start()
    return True


def selftest(job: dict) -> int:
    """A framework-free job that exercises the process machinery (used by tests and `medbench doctor`-style
    checks): ``action`` is ``ok`` (record a completed row), ``fail`` (record a failure), ``kill`` (die by
    SIGKILL without recording anything), ``exit`` (exit 3 without recording anything) or ``sleep`` (start a
    row, sleep ``seconds``, then complete it: a trial that can be caught mid-run)."""
    import os
    import signal

    from medbench.results import ResultsStore

    action = job.get("action", "ok")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "exit":
        return 3
    store = ResultsStore(job["store"])
    store.start_run(run_id=job["run_id"], **job["start"])
    if action == "sleep":
        time.sleep(float(job.get("seconds", 1.0)))
    if action == "fail":
        store.fail_run(job["run_id"], "selftest failure")
        return 1
    store.finish_run(job["run_id"], metrics={"pid": os.getpid()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
