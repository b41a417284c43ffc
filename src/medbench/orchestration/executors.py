"""Where the trials of an experiment run: here, one at a time (default), or across a Ray cluster.

Both executors run every trial through :func:`medbench.orchestration.runner.run_job`, i.e. in a fresh worker
process, and both end with the trial's row in the experiment's results store. The local executor needs no Ray; the Ray
executor imports it only when chosen.

Both claim each trial in the store before starting it (:mod:`medbench.leases`), so any number of executors
sharing a store run each trial once: a trial completed meanwhile is skipped, one held by a live process
elsewhere is left to it, and one whose holder died is reclaimed.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.config import config_hash
from medbench.errors import ConfigError
from medbench.leases import Heartbeat, TrialLeases
from medbench.results import ResultsStore, RunRecord

# on_event(kind, key, detail), by kind: "start" (None), "done" (the RunRecord), "skip" (completed by another
# process meanwhile: its RunRecord), "elsewhere" (running in another live process: its Lease), "reclaimed"
# (a dead holder's lease taken over before "start": (old run id, reason)).
EventHandler = Callable[[str, str, Any], None]


@dataclass(frozen=True)
class Task:
    """A job ready to run, with what it asks of the executor."""

    key: str
    job: dict[str, Any]
    cpus: float = 1
    gpus: float = 0
    timeout_s: float | None = None

    @property
    def trial(self) -> tuple[str, str]:
        """(config hash, kind): what identifies the trial in the store, as its row will have it."""
        start = self.job["start"]
        return config_hash(start["config"]), start["kind"]


def _claim(leases: TrialLeases, task: Task, on_event: EventHandler, completed_since: str | None) -> bool:
    """Claims ``task``'s trial under its job's run id; tells ``on_event`` and returns False if it is done
    or running elsewhere."""
    trial_hash, kind = task.trial
    run_id = task.job.setdefault("run_id", str(uuid.uuid4()))
    claim = leases.claim(trial_hash, kind=kind, run_id=run_id, completed_since=completed_since)
    if claim.reclaimed is not None:
        on_event("reclaimed", task.key, claim.reclaimed)
    if claim.outcome == "completed":
        on_event("skip", task.key, claim.record)
    elif claim.outcome == "held":
        on_event("elsewhere", task.key, claim.lease)
    return claim.outcome == "claimed"


class LocalExecutor:
    """Runs tasks one after another on this machine, each in its own process (no contention between runs).

    Args (of :meth:`run`):
        completed_since: see :meth:`medbench.leases.TrialLeases.claim` (``--rerun`` passes its start time).
        stale_after_s: the lease timeout (see :func:`medbench.leases.stale_after`).
    """

    name = "local"

    def run(
        self,
        tasks: Iterable[Task],
        *,
        store_path: Path,
        on_event: EventHandler,
        completed_since: str | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        from medbench.orchestration.runner import run_job

        leases = TrialLeases(ResultsStore(store_path), stale_after_s=stale_after_s)
        for task in tasks:
            if not _claim(leases, task, on_event, completed_since):
                continue
            on_event("start", task.key, None)
            try:
                record = run_job(
                    task.job, store_path=store_path, quiet=True, timeout_s=task.timeout_s, lease=leases
                )
            finally:  # the row is final by now (run_job settles it), so the trial is done or free to retry
                leases.release(task.job["run_id"])
            on_event("done", task.key, record)


def _run_on_node(job: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    """Runs inside a Ray worker: the trial goes to a node-local store, and its row travels back as a dict.

    A node-local SQLite file avoids sharing one database file across machines (SQLite's locking is not safe
    on network file systems); the driver writes every returned row into the experiment's store.
    """
    from medbench.orchestration.runner import run_job

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

    def run(
        self,
        tasks: Iterable[Task],
        *,
        store_path: Path,
        on_event: EventHandler,
        completed_since: str | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        """Claims and submits every task, then gathers the rows as the tasks finish.

        The trial's row is written on the node (a node-local store) and only reaches the shared store at the
        end, so this driver holds the leases of its submitted trials and heartbeats them from a thread: Ray
        ends a driver's tasks with the driver, so the driver's life is the trials' life.
        """
        ray = self._connect()
        store = ResultsStore(store_path)
        leases = TrialLeases(store, stale_after_s=stale_after_s)
        heartbeat = Heartbeat(leases).start()
        remote = ray.remote(_run_on_node)
        pending: dict[Any, Task] = {}
        try:
            for task in tasks:
                if not _claim(leases, task, on_event, completed_since):
                    continue
                heartbeat.add(task.job["run_id"])
                ref = remote.options(num_cpus=task.cpus, num_gpus=task.gpus, max_retries=0).remote(
                    task.job, task.timeout_s
                )
                pending[ref] = task
                on_event("start", task.key, None)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                record = self._collect(ray, store, done[0], task, lost=task.job["run_id"] in heartbeat.lost)
                heartbeat.discard(task.job["run_id"])
                leases.release(task.job["run_id"])
                on_event("done", task.key, record)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            heartbeat.stop()
            for task in pending.values():  # cancelled or never gathered: free to run again
                leases.release(task.job["run_id"])

    @staticmethod
    def _collect(ray, store: ResultsStore, ref, task: Task, *, lost: bool = False) -> RunRecord:
        run_id = task.job["run_id"]
        try:
            row = ray.get(ref)
        except Exception as err:  # the Ray task itself died (node lost, worker crashed)
            store.start_run(run_id=run_id, **task.job["start"])
            store.fail_run(run_id, f"Ray task failed: {type(err).__name__}: {str(err)[:300]}")
            return store.get_run(run_id)
        if lost and row["status"] == "completed":
            # Another driver reclaimed the trial (our heartbeats did not reach the store in time) and runs
            # it: keep this result out of the counts, so the trial has one completed row.
            row = {
                **row,
                "status": "failed",
                "failure_reason": "abandoned: the trial's lease was reclaimed by another process",
            }
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
