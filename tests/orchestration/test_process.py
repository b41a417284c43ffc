"""Answered jobs in a fresh worker: a result comes back, or an error says how the child ended without one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medbench.errors import WorkerDied, WorkerError, WorkerJobFailed, WorkerNoResult, WorkerTimedOut
from medbench.orchestration.process import call_worker, start_call, worker_env

ROOT = Path(__file__).resolve().parents[2]
# the child imports this checkout's medbench and tests, wherever pytest was started from
ENV = {
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
}


def call(function: str, *, timeout_s: float = 120, env: dict | None = None, **args):
    job = {"kind": "call", "target": f"tests.orchestration.child_jobs:{function}", "args": args}
    return call_worker(job, timeout_s=timeout_s, env={**ENV, **(env or {})})


def test_the_result_comes_back_from_another_process():
    got = call("echo", numbers=[1, 2.5], text="é", nothing=None)
    assert got["args"] == {"numbers": [1, 2.5], "text": "é", "nothing": None}
    assert got["pid"] != os.getpid() and got["parent"] == os.getpid()


def test_a_job_that_raises_is_a_failure_with_its_error_and_traceback():
    with pytest.raises(WorkerJobFailed) as info:
        call("fail", value=7)
    err = info.value
    assert (
        str(err) == "the call job failed: ValueError: bad value 7" and err.error == "ValueError: bad value 7"
    )
    assert "child_jobs.py" in err.traceback and err.returncode == 1 and err.kind == "call"
    assert "ValueError" in err.stderr  # the child's own output is kept too


def test_a_result_that_is_not_json_is_a_failure_of_the_job():
    with pytest.raises(WorkerJobFailed, match="not JSON serializable"):
        call("not_json")


def test_a_child_killed_by_a_signal_died():
    with pytest.raises(WorkerDied, match="killed by SIGKILL") as info:
        call("die_by_signal")
    assert info.value.returncode == -9 and "memory" in str(info.value)


def test_a_child_that_exits_with_an_error_died_and_its_last_words_are_kept():
    with pytest.raises(WorkerDied, match="exited with code 3") as info:
        call("exit_without_result", code=3, last_words="libfoo: cannot go on")
    assert "libfoo: cannot go on" in str(info.value)


def test_a_child_that_exits_normally_without_a_result_says_so():
    with pytest.raises(WorkerNoResult, match="wrote none"):
        call("exit_without_result", code=0)


def test_a_result_written_before_the_process_crashed_counts():
    assert call("crash_after_answering") == "answered"


def test_a_child_past_its_time_is_killed():
    start = time.monotonic()
    with pytest.raises(WorkerTimedOut, match="timed out after 2 s") as info:
        call("sleep", seconds=60, timeout_s=2)
    assert time.monotonic() - start < 30 and info.value.returncode is None


def test_only_registered_kinds_and_the_tests_own_functions_run():
    with pytest.raises(WorkerJobFailed, match="unknown job kind 'nonsense'"):
        call_worker({"kind": "nonsense"}, timeout_s=60, env=ENV)
    with pytest.raises(WorkerJobFailed, match="a call job runs a function of the test suite"):
        call_worker({"kind": "call", "target": "os:getcwd"}, timeout_s=60, env=ENV)


def test_the_worker_imports_no_framework_its_job_does_not_need():
    heavy = [
        "torch",
        "jax",
        "tensorflow",
        "keras",
        "medbench.frameworks",
        "medbench.training",
        "medbench.bench",
    ]
    assert call("loaded", modules=heavy) == []


def test_the_environment_is_this_ones_with_changes_and_removals(monkeypatch):
    monkeypatch.setenv("MEDBENCH_PROBE_KEPT", "kept")
    monkeypatch.setenv("MEDBENCH_PROBE_GONE", "gone")
    names = ["MEDBENCH_PROBE_KEPT", "MEDBENCH_PROBE_GONE", "MEDBENCH_PROBE_NEW", "PYTHONUNBUFFERED"]
    got = call("environment", names=names, env={"MEDBENCH_PROBE_GONE": None, "MEDBENCH_PROBE_NEW": "new"})
    assert got == dict(zip(names, ["kept", None, "new", "1"], strict=True))
    assert "MEDBENCH_PROBE_GONE" not in worker_env({"MEDBENCH_PROBE_GONE": None})


def test_calls_run_side_by_side_and_each_gives_its_own_answer():
    jobs = [
        {"kind": "call", "target": "tests.orchestration.child_jobs:echo", "args": {"i": i}} for i in range(3)
    ]
    calls = [start_call(job, env=ENV) for job in jobs]
    assert len({c.process.pid for c in calls}) == 3
    assert [c.result(timeout_s=120)["args"]["i"] for c in calls] == [0, 1, 2]


PARENT = """
import sys
from medbench.orchestration.process import call_worker
job = {"kind": "call", "target": "tests.orchestration.child_jobs:sleep",
       "args": {"seconds": 60, "pid_file": sys.argv[1]}}
call_worker(job, timeout_s=120)
"""


def test_a_child_dies_with_its_parent(tmp_path):
    import psutil

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], env=worker_env(ENV))
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.kill()  # SIGKILL: the parent can do nothing more
        parent.wait()
    finally:
        parent.kill()

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 15
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(), "the child outlived its parent"


def test_every_way_of_ending_without_a_result_is_a_medbench_error():
    for error in (WorkerJobFailed, WorkerDied, WorkerTimedOut, WorkerNoResult):
        assert issubclass(error, WorkerError) and error.exit_code == 1
