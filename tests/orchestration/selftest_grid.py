"""A stand-in for ``medbench run`` in fault tests: a grid of framework-free ``selftest`` trials (each sleeps
SECONDS in its worker) run by the local executor in this process, which prints each event as one line
(``start a``, ``elsewhere b``, ``done a completed`` ...).

    python selftest_grid.py STORE SECONDS KEY [KEY ...]

A trial is identified by its key alone (its config is ``{"key": KEY}``), so runs with other SECONDS are
the same trials.
"""

from __future__ import annotations

import sys
from pathlib import Path

from medbench.orchestration.executors import LocalExecutor, Task


def selftest_task(key: str, seconds: float) -> Task:
    job = {
        "kind": "selftest",
        "action": "sleep",
        "seconds": seconds,
        "start": {"kind": "selftest", "config": {"key": key}},
    }
    return Task(key=key, job=job)


def main(argv: list[str]) -> int:
    store, seconds, *keys = argv

    def on_event(kind: str, key: str, detail) -> None:
        status = getattr(detail, "status", "")
        print(kind, key, status, flush=True)

    tasks = [selftest_task(key, float(seconds)) for key in keys]
    LocalExecutor().run(tasks, store_path=Path(store), on_event=on_event)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
