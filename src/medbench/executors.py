"""Where the trials of an experiment run: here, one at a time (default), or across a Ray cluster.

Both executors run every trial through :func:`medbench.runner.run_job`, i.e. in a fresh worker process, and
both end with the trial's row in the experiment's results store. The local executor needs no Ray; the Ray
executor imports it only when chosen.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.errors import ConfigError
from medbench.results import ResultsStore, RunRecord

# on_event(kind, key, record): kind is "start" or "done"; record is None on "start".
EventHandler = Callable[[str, str, "RunRecord | None"], None]


@dataclass(frozen=True)
class Task:
    """A job ready to run, with what it asks of the executor."""

    key: str
    job: dict[str, Any]
    cpus: float = 1
    gpus: float = 0
    timeout_s: float | None = None


class LocalExecutor:
    """Runs tasks one after another on this machine, each in its own process (no contention between runs)."""

    name = "local"

    def run(self, tasks: Iterable[Task], *, store_path: Path, on_event: EventHandler) -> None:
        from medbench.runner import run_job

        for task in tasks:
            on_event("start", task.key, None)
            record = run_job(task.job, store_path=store_path, quiet=True, timeout_s=task.timeout_s)
            on_event("done", task.key, record)


def _run_on_node(job: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    """Runs inside a Ray worker: the trial goes to a node-local store, and its row travels back as a dict.

    A node-local SQLite file avoids sharing one database file across machines (SQLite's locking is not safe
    on network file systems); the driver writes every returned row into the experiment's store.
    """
    from medbench.runner import run_job

    with tempfile.TemporaryDirectory(prefix="medbench-ray-") as tmp:
        record = run_job(job, store_path=Path(tmp) / "trial.sqlite", quiet=True, timeout_s=timeout_s)
        return record.to_dict()


class RayExecutor:
    """Runs tasks as Ray tasks, each with the CPUs/GPUs it asks for, across a local or remote cluster.

    Args:
        address: an existing cluster (``ray://host:10001`` or ``auto``); None starts a local one.
        num_cpus: CPUs of the local cluster started when ``address`` is None (default: all).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None):
        self.address = address
        self.num_cpus = num_cpus

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "The Ray executor needs Ray, which is not installed.",
                "Install it with `pip install 'medbench[ray]'`.",
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
        return ray

    def run(self, tasks: Iterable[Task], *, store_path: Path, on_event: EventHandler) -> None:
        ray = self._connect()
        store = ResultsStore(store_path)
        remote = ray.remote(_run_on_node)
        pending: dict[Any, Task] = {}
        for task in tasks:
            ref = remote.options(num_cpus=task.cpus, num_gpus=task.gpus, max_retries=0).remote(
                task.job, task.timeout_s
            )
            pending[ref] = task
            on_event("start", task.key, None)
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                on_event("done", task.key, self._collect(ray, store, done[0], task))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _collect(ray, store: ResultsStore, ref, task: Task) -> RunRecord:
        try:
            row = ray.get(ref)
        except Exception as err:  # the Ray task itself died (node lost, worker crashed)
            start = task.job["start"]
            run_id = task.job["run_id"]
            store.start_run(run_id=run_id, **start)
            store.fail_run(run_id, f"Ray task failed: {type(err).__name__}: {str(err)[:300]}")
            return store.get_run(run_id)
        store.import_run(row)
        return store.get_run(row["run_id"])


def make_executor(name: str, *, address: str | None = None, num_cpus: int | None = None):
    if name == "local":
        if address:
            raise ConfigError(
                "--address is only for the Ray executor.", "Add --executor ray, or drop --address."
            )
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address, num_cpus=num_cpus)
    raise ConfigError(f"Unknown executor {name!r}.", "Use local or ray.")
