"""The child process of every framework run: ``python -m medbench.worker JOB.json``.

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
        print("usage: python -m medbench.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    job.setdefault("worker_started_at", _STARTED_AT)
    kind = job["kind"]
    if kind == "train":
        from medbench.training import run_training_job

        return run_training_job(job)
    if kind == "bench":
        from medbench.bench.cell import run_bench_job

        return run_bench_job(job)
    if kind == "selftest":
        return _selftest(job)
    print(f"unknown job kind {kind!r}", file=sys.stderr)
    return 2


def _selftest(job: dict) -> int:
    """A framework-free job that exercises the process machinery (used by tests and `medbench doctor`-style
    checks): ``action`` is ``ok`` (record a completed row), ``fail`` (record a failure), ``kill`` (die by
    SIGKILL without recording anything) or ``exit`` (exit 3 without recording anything)."""
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
    if action == "fail":
        store.fail_run(job["run_id"], "selftest failure")
        return 1
    store.finish_run(job["run_id"], metrics={"pid": os.getpid()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
