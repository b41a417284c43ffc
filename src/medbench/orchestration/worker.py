"""The child process of every framework run: ``python -m medbench.orchestration.worker JOB.json``.

The orchestrator writes a job file (what to do, the resolved config, where the store and run folder are) and
starts this module in a fresh interpreter, so imports, compilation caches and thread settings never leak
between frameworks and the cold start is real. The worker records its own result in the store; if it dies
without doing so (a segfault, the kernel's OOM killer), the parent records the failure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Read as the worker starts, before any job work: a benchmark's cold start goes from the parent's spawn to
# here (interpreter start-up) and on to the first prediction.
_STARTED_AT = time.time()


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
    kind = job["kind"]
    if kind == "train":
        from medbench.training import run_training_job

        return run_training_job(job)
    if kind == "bench":
        from medbench.bench.cell import run_bench_job

        return run_bench_job(job)
    if kind == "train_probe":  # training img/s of one config (medbench tune, benchmarks/bench_train.py)
        from medbench.bench.train_probe import run_probe_job

        return run_probe_job(job)
    if kind == "selftest":
        return _selftest(job)
    print(f"unknown job kind {kind!r}", file=sys.stderr)
    return 2


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


def _selftest(job: dict) -> int:
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
