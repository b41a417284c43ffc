"""Fault tests of grids sharing a store, with real processes: every trial runs once, whatever is killed.

Each grid is ``selftest_grid.py`` (the local executor over framework-free ``selftest`` trials that sleep in
their worker), so the tests exercise the real claim, worker and parent-death machinery in seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from medbench.results import ResultsStore, RunRecord

GRID = Path(__file__).with_name("selftest_grid.py")
HOLDER = """
import sys, time
from medbench.leases import TrialLeases
from medbench.config import config_hash
from medbench.results import ResultsStore
store = ResultsStore(sys.argv[1])
store.start_run(run_id="held-run", kind="selftest", config={"key": sys.argv[2]})
claim = TrialLeases(store).claim(config_hash({"key": sys.argv[2]}), kind="selftest", run_id="held-run")
print(claim.outcome, flush=True)
time.sleep(float(sys.argv[3]))
"""


def grid(store: Path, seconds: float, *keys: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(GRID), str(store), str(seconds), *keys],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def events(output: str, kind: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.split()[:1] == [kind]]


def rows(store: Path) -> list[RunRecord]:
    return ResultsStore(store).list_runs(kind="selftest")


def completed_per_trial(store: Path) -> Counter:
    return Counter(r.config["key"] for r in rows(store) if r.status == "completed")


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped by init
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "results.sqlite"
    ResultsStore(path)  # created up front, so two grids do not race to create the schema
    return path


def test_two_grids_at_once_run_each_trial_exactly_once(store):
    first, second = grid(store, 1.0, "a", "b", "c"), grid(store, 1.0, "a", "b", "c")
    outputs = [finish(first), finish(second)]
    assert completed_per_trial(store) == {"a": 1, "b": 1, "c": 1}
    assert len(rows(store)) == 3  # no second row of any kind for a trial
    started = [events(out, "start") for out in outputs]
    assert sorted(started[0] + started[1]) == ["a", "b", "c"]  # each trial started by one grid only
    # The other grid said why it did not run them: running elsewhere, or completed meanwhile.
    for out, mine in zip(outputs, started, strict=True):
        assert sorted(events(out, "elsewhere") + events(out, "skip") + mine) == ["a", "b", "c"]


def test_killed_parent_leaves_no_orphan_and_a_rerun_runs_each_trial_once(store):
    parent = grid(store, 60, "a", "b")
    try:
        running = wait_for(
            lambda: [r for r in rows(store) if r.status == "running"], what="the first trial to start"
        )[0]
        worker = running.pid
        assert worker != parent.pid and not gone(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        wait_for(lambda: gone(worker), timeout=15, what=f"worker {worker} to die with its parent")
    finally:
        parent.kill()
        parent.communicate()
    output = finish(grid(store, 0.1, "a", "b"))
    assert "reclaimed a" in output and events(output, "start") == ["a", "b"]
    assert completed_per_trial(store) == {"a": 1, "b": 1}
    old = ResultsStore(store).get_run(running.run_id)
    assert old.status == "failed" and old.failure_reason.startswith("abandoned:")
    assert f"pid {worker}" in old.failure_reason


def test_a_stale_lease_of_a_dead_process_is_reclaimed(store):
    holder = subprocess.run(
        [sys.executable, "-c", HOLDER, str(store), "a", "0"], capture_output=True, text=True, timeout=60
    )
    assert holder.stdout.strip() == "claimed", holder.stderr  # it held the lease, then died without a result
    output = finish(grid(store, 0.1, "a"))
    assert events(output, "reclaimed") == ["a"] and events(output, "start") == ["a"]
    assert completed_per_trial(store) == {"a": 1}
    dead = ResultsStore(store).get_run("held-run")
    assert dead.status == "failed" and "abandoned" in dead.failure_reason


def test_a_live_lease_is_respected(store):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store), "a", "120"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        output = finish(grid(store, 0.1, "a", "b"))
        assert events(output, "elsewhere") == ["a"] and events(output, "start") == ["b"]
        by_key = {r.config["key"]: r for r in rows(store)}
        assert by_key["a"].run_id == "held-run" and by_key["a"].status == "running"  # left alone
        assert by_key["b"].status == "completed" and len(rows(store)) == 2
    finally:
        holder.kill()
        holder.wait()


def test_the_worker_holds_the_lease_and_heartbeats_it_while_it_runs(store):
    from medbench.leases import TrialLeases

    parent = grid(store, 60, "a")
    try:
        running = wait_for(lambda: [r for r in rows(store) if r.status == "running"], what="the trial")[0]
        leases = TrialLeases(ResultsStore(store))
        lease = wait_for(lambda: leases.get(running.run_id), what="the lease")
        # The pid in the lease is the worker's (it took the lease over from the parent that claimed it).
        assert lease.pid == running.pid != parent.pid and lease.hostname == running.hostname
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.communicate()


def test_the_worker_heartbeat_refreshes_the_lease(store, monkeypatch):
    # A short timeout makes the worker beat every 0.1 s (timeout / 4).
    monkeypatch.setenv("MEDBENCH_LEASE_TIMEOUT", "0.4")
    from medbench.leases import TrialLeases

    parent = grid(store, 60, "a")
    try:
        running = wait_for(lambda: [r for r in rows(store) if r.status == "running"], what="the trial")[0]
        leases = TrialLeases(ResultsStore(store))
        first = wait_for(lambda: leases.get(running.run_id), what="the lease").heartbeat_at
        wait_for(lambda: leases.get(running.run_id).heartbeat_at > first + 0.15, timeout=20, what="a beat")
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.communicate()
