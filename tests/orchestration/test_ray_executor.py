"""The Ray executor on a real local Ray cluster started by the test: trials run as Ray tasks and every row
lands in the driver's store."""

import sqlite3

import pytest

from medbench.orchestration.executors import RayExecutor, Task
from medbench.results import ResultsStore

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'medbench[ray]')")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def selftest(action: str, key: str) -> Task:
    job = {"kind": "selftest", "action": action, "start": {"kind": "selftest", "config": {"key": key}}}
    return Task(key=key, job=job, cpus=1)


def test_trials_run_as_ray_tasks_and_rows_are_gathered_into_one_store(cluster, tmp_path):
    store_path = tmp_path / "results.sqlite"
    events = []
    tasks = [selftest("ok", "a"), selftest("ok", "b"), selftest("kill", "c"), selftest("fail", "d")]
    RayExecutor().run(
        tasks, store_path=store_path, on_event=lambda kind, key, rec: events.append((kind, key, rec))
    )
    rows = {r.config["key"]: r for r in ResultsStore(store_path).list_runs()}
    assert set(rows) == {"a", "b", "c", "d"}
    assert rows["a"].status == rows["b"].status == "completed"
    assert rows["c"].status == "failed" and "SIGKILL" in rows["c"].failure_reason
    assert rows["d"].failure_reason == "selftest failure"
    # Each trial ran in its own worker process on the cluster, not in the driver.
    import os

    assert os.getpid() not in {rows["a"].metrics["pid"], rows["b"].metrics["pid"]}
    assert sorted(k for kind, k, _ in events if kind == "done") == ["a", "b", "c", "d"]


def test_rows_gathered_twice_are_not_duplicated(cluster, tmp_path):
    store_path = tmp_path / "results.sqlite"
    task = selftest("ok", "x")
    RayExecutor().run([task], store_path=store_path, on_event=lambda *a: None)
    store = ResultsStore(store_path)
    row = store.list_runs()[0]
    store.import_run(row.to_dict())
    assert len(store.list_runs()) == 1


def test_ray_trials_are_claimed_in_the_shared_store(cluster, tmp_path):
    """A trial a live process holds is not submitted; a dead holder's lease is reclaimed and the trial
    runs; the driver holds (and then releases) the leases of what it submits."""
    from medbench.config import config_hash
    from medbench.leases import TrialLeases

    store = ResultsStore(tmp_path / "results.sqlite")
    leases = TrialLeases(store)
    assert leases.claim(config_hash({"key": "held"}), kind="selftest", run_id="held-run").outcome == "claimed"
    store.start_run(run_id="dead-run", kind="selftest", config={"key": "dead"})
    leases.claim(config_hash({"key": "dead"}), kind="selftest", run_id="dead-run")
    with sqlite3.connect(store.path) as conn:  # its holder is gone (a pid above Linux's pid_max)
        conn.execute("UPDATE leases SET pid = ? WHERE run_id = 'dead-run'", (2**22 + 12345,))
    events = []
    tasks = [selftest("ok", "held"), selftest("ok", "dead"), selftest("ok", "free")]
    RayExecutor().run(tasks, store_path=store.path, on_event=lambda kind, key, _: events.append((kind, key)))
    assert ("elsewhere", "held") in events and ("reclaimed", "dead") in events
    rows = {(r.config["key"], r.status) for r in store.list_runs()}
    assert rows == {("dead", "failed"), ("dead", "completed"), ("free", "completed")}
    assert store.get_run("dead-run").failure_reason.startswith("abandoned:")
    assert [lease.run_id for lease in leases.held().values()] == ["held-run"]  # the driver released its own
