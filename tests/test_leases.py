"""Trial leases in the store: one claim wins, stale holders are told from live ones, completed trials stay
done, and a reclaimed lease marks its run abandoned."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time

import pytest

from medbench.config import config_hash
from medbench.errors import ConfigError
from medbench.leases import Heartbeat, TrialLeases, stale_after
from medbench.results import ResultsStore
from medbench.results.records import _utc_now

CONFIG = {"key": "a"}
HASH = config_hash(CONFIG)


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    return ResultsStore(tmp_path / "results.sqlite")


@pytest.fixture
def leases(store) -> TrialLeases:
    return TrialLeases(store, stale_after_s=60)


def set_lease(store: ResultsStore, run_id: str, **values) -> None:
    assignments = ", ".join(f"{name} = ?" for name in values)
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"UPDATE leases SET {assignments} WHERE run_id = ?", (*values.values(), run_id))


def test_the_first_claim_wins_and_a_second_sees_the_holder(leases):
    first = leases.claim(HASH, kind="train", run_id="r1")
    second = leases.claim(HASH, kind="train", run_id="r2")
    assert first.outcome == "claimed" and first.lease.pid == os.getpid()
    assert second.outcome == "held" and second.lease.run_id == "r1"
    assert leases.claim(HASH, kind="bench", run_id="r3").outcome == "claimed"  # another kind, another trial


def test_claims_from_many_threads_give_one_winner(leases):
    outcomes: list[str] = []

    def claim(i: int) -> None:
        outcomes.append(leases.claim(HASH, kind="train", run_id=f"r{i}").outcome)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["claimed"] + ["held"] * 7


def test_a_completed_trial_is_not_claimed_again(store, leases):
    store.start_run(run_id="done", kind="train", config=CONFIG)
    store.finish_run("done", metrics={"test_acc": 0.9})
    claim = leases.claim(HASH, kind="train", run_id="r2")
    assert claim.outcome == "completed" and claim.record.run_id == "done"


def test_completed_since_lets_a_rerun_claim_a_trial_completed_before_it_started(store, leases):
    before = _utc_now()
    store.start_run(run_id="old", kind="train", config=CONFIG)
    store.finish_run("old")
    rerun_started = _utc_now()
    assert leases.claim(HASH, kind="train", run_id="r2", completed_since=rerun_started).outcome == "claimed"
    leases.release("r2")
    assert leases.claim(HASH, kind="train", run_id="r3", completed_since=before).outcome == "completed"


def test_a_lease_of_a_dead_process_on_this_host_is_reclaimed_and_its_run_marked(store, leases):
    store.start_run(run_id="r1", kind="train", config=CONFIG)
    assert leases.claim(HASH, kind="train", run_id="r1").outcome == "claimed"
    set_lease(store, "r1", pid=2**22 + 12345)  # above Linux's pid_max: no such process
    claim = leases.claim(HASH, kind="train", run_id="r2")
    assert claim.outcome == "claimed" and claim.reclaimed[0] == "r1"
    old = store.get_run("r1")
    assert (
        old.status == "failed"
        and old.failure_reason.startswith("abandoned:")
        and "ended" in old.failure_reason
    )
    assert leases.get("r1") is None and leases.get("r2").pid == os.getpid()


def test_a_reused_pid_does_not_pass_for_the_holder(store, leases):
    leases.claim(HASH, kind="train", run_id="r1")
    set_lease(store, "r1", pid=os.getpid(), pid_started=time.time() - 10**6)  # "our" pid, long before us
    assert leases.claim(HASH, kind="train", run_id="r2").outcome == "claimed"


def test_another_hosts_lease_is_judged_by_its_heartbeat(store, leases):
    store.start_run(run_id="r1", kind="train", config=CONFIG)
    leases.claim(HASH, kind="train", run_id="r1")
    set_lease(store, "r1", hostname="other-node", pid=1, heartbeat_at=time.time() - 30)
    assert leases.claim(HASH, kind="train", run_id="r2").outcome == "held"  # 30 s < 60 s: alive
    set_lease(store, "r1", heartbeat_at=time.time() - 600)
    claim = leases.claim(HASH, kind="train", run_id="r2")
    assert claim.outcome == "claimed" and "no heartbeat from other-node" in claim.reclaimed[1]
    assert store.get_run("r1").status == "failed"


def test_reclaiming_never_turns_a_completed_run_into_a_failure(store, leases):
    store.start_run(run_id="r1", kind="train", config=CONFIG)
    leases.claim(HASH, kind="train", run_id="r1")
    store.finish_run("r1")  # its process completed the row and died before releasing the lease
    set_lease(store, "r1", hostname="other-node", heartbeat_at=0.0)
    claim = leases.claim(HASH, kind="train", run_id="r2")
    assert claim.outcome == "completed" and store.get_run("r1").status == "completed"
    assert leases.get("r1") is None  # the stale lease is gone all the same


def test_heartbeat_take_over_and_release(store, leases):
    leases.claim(HASH, kind="train", run_id="r1")
    set_lease(store, "r1", heartbeat_at=0.0, hostname="elsewhere")
    assert leases.heartbeat("r1") and leases.get("r1").heartbeat_at > time.time() - 5
    assert leases.take_over("r1") and leases.get("r1").hostname == socket.gethostname()
    leases.release("r1")
    assert not leases.heartbeat("r1") and not leases.take_over("r1") and leases.get("r1") is None


def test_the_heartbeat_thread_beats_and_reports_a_lost_lease(store, leases):
    leases.claim(HASH, kind="train", run_id="r1")
    lost: list[str] = []
    beat = Heartbeat(leases, interval_s=0.02, on_lost=lost.append)
    beat.add("r1")
    beat.start()
    try:
        before = leases.get("r1").heartbeat_at
        deadline = time.monotonic() + 10
        while leases.get("r1").heartbeat_at == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert leases.get("r1").heartbeat_at > before
        leases.release("r1")  # as if another process had reclaimed it
        while not lost and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lost == ["r1"] and beat.lost == {"r1"}
    finally:
        beat.stop()


def test_held_lists_only_live_leases(store, leases):
    leases.claim(HASH, kind="train", run_id="r1")
    leases.claim(config_hash({"key": "b"}), kind="train", run_id="r2")
    set_lease(store, "r2", hostname="other-node", heartbeat_at=0.0)
    assert [lease.run_id for lease in leases.held().values()] == ["r1"]


def test_the_timeout_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv("MEDBENCH_LEASE_TIMEOUT", raising=False)
    assert stale_after() == 120 and stale_after(5) == 5
    monkeypatch.setenv("MEDBENCH_LEASE_TIMEOUT", "30")
    assert stale_after() == 30
    monkeypatch.setenv("MEDBENCH_LEASE_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="MEDBENCH_LEASE_TIMEOUT"):
        stale_after()
    with pytest.raises(ConfigError, match="positive"):
        stale_after(-1)
