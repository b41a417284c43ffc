"""A worker dies with its parent: with Linux's parent-death signal, and with the portable polling thread.

Real processes: a parent starts a child that arms :func:`medbench.lifeline.die_with_parent`, the test kills
the parent with SIGKILL (nothing runs in it any more), and the child must be gone soon after.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from medbench.lifeline import PARENT_GONE_EXIT

CHILD = """
import os, sys, time
from medbench.lifeline import die_with_parent
armed = die_with_parent(int(sys.argv[1]), force_watcher=sys.argv[2] == "watcher")
print("armed" if armed else "parent-gone", flush=True)
time.sleep(60)
"""
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]])
print(child.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped by init
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(
            "prctl", marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
        ),
        "watcher",
    ],
)
def test_the_child_dies_when_its_parent_is_killed(how):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, how], stdout=subprocess.PIPE, text=True)
    try:
        lines = {parent.stdout.readline().strip() for _ in range(2)}  # the child's pid, and "armed"
        assert "armed" in lines, lines
        child = int(next(line for line in lines if line.isdigit()))
        assert not gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), f"child {child} outlived its parent ({how})"
    finally:
        parent.kill()
        parent.wait()


def test_a_child_whose_parent_is_already_gone_is_told_so():
    # The child's parent is this test process, not pid 1: as if the parent had died before it armed.
    for how in ("prctl", "watcher"):
        result = subprocess.run(
            [sys.executable, "-c", CHILD.replace("time.sleep(60)", ""), "1", how],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip() == "parent-gone", result.stderr


def test_a_worker_whose_parent_is_gone_does_not_start(tmp_path):
    store = tmp_path / "results.sqlite"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"kind": "selftest", "action": "ok", "parent_pid": 1, "store": str(store)}))
    result = subprocess.run(
        [sys.executable, "-m", "medbench.orchestration.worker", str(job)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == PARENT_GONE_EXIT and "gone" in result.stderr
    assert not store.exists()  # it stopped before doing anything
