"""Runs in fresh processes: whatever happens to the child, the store ends up with one honest row."""

import os

import pytest

from medbench.results import ResultsStore
from medbench.runner import run_job


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
