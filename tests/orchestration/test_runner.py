"""Runs in fresh processes: whatever happens to the child, the store ends up with one honest row."""

import os

import pytest

from medbench.orchestration.runner import run_job
from medbench.results import ResultsStore


def selftest_job(action: str) -> dict:
    return {"kind": "selftest", "action": action, "start": {"kind": "selftest", "config": {"action": action}}}


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "results.sqlite"


def test_a_completed_child_records_its_own_row_in_another_process(store_path):
    record = run_job(selftest_job("ok"), store_path=store_path)
    assert record.status == "completed"
    assert record.metrics["pid"] != os.getpid()


def test_a_child_killed_by_a_signal_is_recorded_as_failed_with_the_reason(store_path):
    record = run_job(selftest_job("kill"), store_path=store_path)
    assert record.status == "failed"
    assert "SIGKILL" in record.failure_reason and "memory" in record.failure_reason


def test_a_child_that_exits_without_a_row_is_recorded(store_path):
    record = run_job(selftest_job("exit"), store_path=store_path)
    assert record.status == "failed" and "code 3" in record.failure_reason


def test_a_failure_the_child_recorded_is_kept_as_it_said(store_path):
    record = run_job(selftest_job("fail"), store_path=store_path)
    assert record.status == "failed" and record.failure_reason == "selftest failure"


def test_earlier_rows_survive_a_later_crash(store_path):
    first = run_job(selftest_job("ok"), store_path=store_path)
    run_job(selftest_job("kill"), store_path=store_path)
    rows = {r.run_id: r for r in ResultsStore(store_path).list_runs()}
    assert rows[first.run_id].status == "completed" and len(rows) == 2


DETACHED_PARENT = """
import sys
from medbench.orchestration.runner import run_job
job = {"kind": "selftest", "action": "sleep", "seconds": 1.0, "start": {"kind": "selftest", "config": {}}}
run_job(job, store_path=sys.argv[1], detach=sys.argv[2] == "detach")
"""


@pytest.mark.parametrize("mode", ["attached", "detach"])
def test_a_worker_dies_with_its_parent_unless_detached_on_purpose(store_path, mode):
    import subprocess
    import sys
    import time

    import psutil

    def wait_for(condition) -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)

    def worker_gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    parent = subprocess.Popen([sys.executable, "-c", DETACHED_PARENT, str(store_path), mode])
    try:
        wait_for(lambda: ResultsStore(store_path).list_runs())
        parent.kill()  # SIGKILL: the parent can do nothing more
        parent.wait()
    finally:
        parent.kill()
    worker = ResultsStore(store_path).list_runs()[0].pid
    wait_for(lambda: worker_gone(worker))  # killed with its parent, or done with its 1 s sleep
    [row] = ResultsStore(store_path).list_runs()
    assert row.status == ("completed" if mode == "detach" else "running")  # killed mid-sleep: no result
