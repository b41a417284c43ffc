"""Trial leases: each trial of a grid runs once, however many ``medbench run`` processes share one store.

A trial is its config hash (and run kind). Before running one, a process *claims* it in the results store:
in one ``BEGIN IMMEDIATE`` transaction it looks for a completed run of that hash and for a lease on it, and
only if there is neither does it insert its own lease, so two claims of one trial can never both succeed
(the ``leases`` table is keyed by the trial, see :func:`medbench.results.schema._add_trial_leases`).

A lease names its holder: host, pid (and the pid's start time, so a reused pid is not mistaken for the
holder) and a heartbeat time that the holder refreshes while it works (:class:`Heartbeat`, a thread). The
parent claims a trial with its own pid and the worker process takes the lease over when it starts, so the
pid in the lease is the process doing the work. Another process decides whether a lease is still held:

- on the holder's own host, by its pid: a dead (or reused) pid is stale at once, a live one is held;
- from another host (Ray nodes sharing a store), by the heartbeat: none for ``stale_after_s`` is stale.

A stale lease is reclaimed in the same transaction as the new claim, and the run it covered, if still
``running``, is marked ``failed`` with an ``abandoned: ...`` reason so that reports never count it.
Clocks of hosts sharing a store are assumed to agree to well within ``stale_after_s``, and every process
sharing a store should use the same timeout (``$MEDBENCH_LEASE_TIMEOUT``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from medbench.errors import ConfigError, MedbenchError
from medbench.results import ResultsStore, RunRecord
from medbench.results.records import _utc_now
from medbench.results.store import _process_alive

LEASE_TIMEOUT_ENV = "MEDBENCH_LEASE_TIMEOUT"
DEFAULT_STALE_AFTER_S = 120.0
# A holder beats several times per timeout, so one slow write (a busy store) never makes it look dead.
_BEATS_PER_TIMEOUT = 4
_MAX_HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class Lease:
    """One row of the ``leases`` table: who runs a trial, and when they last said so (epoch seconds)."""

    config_hash: str
    kind: str
    run_id: str
    hostname: str
    pid: int
    pid_started: float | None
    claimed_at: float
    heartbeat_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Lease:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    def describe(self, now: float | None = None) -> str:
        age = (now or time.time()) - self.heartbeat_at
        return f"run {self.run_id[:8]} by pid {self.pid} on {self.hostname}, last heartbeat {age:.0f} s ago"


@dataclass(frozen=True)
class Claim:
    """What :meth:`TrialLeases.claim` found.

    ``outcome`` is ``claimed`` (run it: ``lease`` is ours), ``completed`` (done already: ``record``) or
    ``held`` (running elsewhere: ``lease`` is the holder's). ``reclaimed`` is the (run id, reason) of a
    stale lease this claim replaced.
    """

    outcome: Literal["claimed", "completed", "held"]
    lease: Lease | None = None
    record: RunRecord | None = None
    reclaimed: tuple[str, str] | None = None


def stale_after(value: float | None = None) -> float:
    """The lease timeout: ``value``, else ``$MEDBENCH_LEASE_TIMEOUT``, else 120 s.

    Raises:
        ConfigError: if it is not a positive number of seconds.
    """
    if value is None:
        text = os.environ.get(LEASE_TIMEOUT_ENV)
        if not text:
            return DEFAULT_STALE_AFTER_S
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(
                f"${LEASE_TIMEOUT_ENV}={text!r} is not a number of seconds.",
                f"Set it to e.g. 120, or unset it for the default ({DEFAULT_STALE_AFTER_S:g} s).",
            ) from None
        source = f"${LEASE_TIMEOUT_ENV}"
    else:
        source = "The lease timeout (--lease-timeout)"
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{source} must be a positive number of seconds, not {value:g}.", "Use e.g. 120.")
    return float(value)


def process_start_time(pid: int | None = None) -> float | None:
    """The start time (epoch seconds) of ``pid`` (default: this process), or None if it cannot be read."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def stale_reason(lease: Lease, *, now: float, host: str, stale_after_s: float) -> str | None:
    """Why ``lease`` no longer protects its trial, or None while its holder is alive."""
    if lease.hostname == host:
        started = lease.pid_started if lease.pid_started is not None else lease.claimed_at
        if _process_alive(lease.pid, started):
            return None
        return f"its process (pid {lease.pid} on {host}) ended without finishing the trial"
    silent = now - lease.heartbeat_at
    if silent <= stale_after_s:
        return None
    return f"no heartbeat from {lease.hostname} for {silent:.0f} s (limit {stale_after_s:g} s)"


class TrialLeases:
    """Claims, heartbeats and releases of trial leases in one results store.

    Args:
        store: the results store the trials' rows go to.
        stale_after_s: see :func:`stale_after`.
    """

    def __init__(self, store: ResultsStore, *, stale_after_s: float | None = None):
        self.store = store
        self.stale_after_s = stale_after(stale_after_s)

    @property
    def heartbeat_s(self) -> float:
        """How often a holder should beat."""
        return min(_MAX_HEARTBEAT_S, self.stale_after_s / _BEATS_PER_TIMEOUT)

    def claim(self, config_hash: str, *, kind: str, run_id: str, completed_since: str | None = None) -> Claim:
        """Claims the trial ``(config_hash, kind)`` for the run ``run_id``, held by this process.

        Args:
            completed_since: a completed run counts as done only if it finished at or after this time
                (ISO text, as the store writes it); None: any completed run counts. ``--rerun`` passes the
                time it started, so trials completed before run again, but only once.
        """
        host, pid, pid_started = socket.gethostname(), os.getpid(), process_start_time()

        def claim(conn: sqlite3.Connection) -> Claim:
            now = time.time()
            done = self._completed(conn, config_hash, kind, completed_since)
            row = conn.execute(
                "SELECT * FROM leases WHERE config_hash = ? AND kind = ?", (config_hash, kind)
            ).fetchone()
            reclaimed = None
            if row is not None:
                lease = Lease.from_row(row)
                reason = stale_reason(lease, now=now, host=host, stale_after_s=self.stale_after_s)
                if reason is None:
                    return Claim("completed", record=done) if done else Claim("held", lease=lease)
                self._abandon(conn, lease, reason)
                reclaimed = (lease.run_id, reason)
            if done is not None:
                return Claim("completed", record=done, reclaimed=reclaimed)
            ours = Lease(config_hash, kind, run_id, host, pid, pid_started, now, now)
            conn.execute(
                "INSERT INTO leases (config_hash, kind, run_id, hostname, pid, pid_started, claimed_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (config_hash, kind, run_id, host, pid, pid_started, now, now),
            )
            return Claim("claimed", lease=ours, reclaimed=reclaimed)

        return self.store._transact(claim)

    @staticmethod
    def _completed(
        conn: sqlite3.Connection, config_hash: str, kind: str, since: str | None
    ) -> RunRecord | None:
        sql = "SELECT * FROM runs WHERE config_hash = ? AND kind = ? AND status = 'completed'"
        params: list[str] = [config_hash, kind]
        if since is not None:
            sql += " AND finished_at >= ?"
            params.append(since)
        row = conn.execute(sql + " ORDER BY finished_at DESC LIMIT 1", params).fetchone()
        return None if row is None else RunRecord.from_row(row)

    @staticmethod
    def _abandon(conn: sqlite3.Connection, lease: Lease, reason: str) -> None:
        # Only a row still `running` is closed: a completed result is never turned into a failure.
        conn.execute(
            "UPDATE runs SET status = 'failed', failure_reason = ?, finished_at = ? "
            "WHERE run_id = ? AND status = 'running'",
            (f"abandoned: {reason}; the trial was claimed again", _utc_now(), lease.run_id),
        )
        conn.execute("DELETE FROM leases WHERE run_id = ?", (lease.run_id,))

    def take_over(self, run_id: str) -> bool:
        """Makes this process (the worker) the holder of ``run_id``'s lease; False if it has none."""
        host, pid, pid_started = socket.gethostname(), os.getpid(), process_start_time()
        sql = "UPDATE leases SET hostname = ?, pid = ?, pid_started = ?, heartbeat_at = ? WHERE run_id = ?"
        values = (host, pid, pid_started, time.time(), run_id)
        return self.store._transact(lambda conn: conn.execute(sql, values).rowcount) == 1

    def heartbeat(self, run_id: str) -> bool:
        """Refreshes ``run_id``'s lease; False if it has been reclaimed (or released) meanwhile."""
        sql = "UPDATE leases SET heartbeat_at = ? WHERE run_id = ?"
        return self.store._transact(lambda conn: conn.execute(sql, (time.time(), run_id)).rowcount) == 1

    def release(self, run_id: str) -> None:
        """Drops ``run_id``'s lease (after its row is final); a lease reclaimed by another run stays."""
        self.store._transact(lambda conn: conn.execute("DELETE FROM leases WHERE run_id = ?", (run_id,)))

    def get(self, run_id: str) -> Lease | None:
        def read(conn: sqlite3.Connection) -> sqlite3.Row | None:
            return conn.execute("SELECT * FROM leases WHERE run_id = ?", (run_id,)).fetchone()

        row = self.store._transact(read, begin="BEGIN")
        return None if row is None else Lease.from_row(row)

    def held(self) -> dict[tuple[str, str], Lease]:
        """The leases whose holders are alive, by (config_hash, kind); stale ones are left for a claim."""
        rows = self.store._transact(
            lambda conn: conn.execute("SELECT * FROM leases").fetchall(), begin="BEGIN"
        )
        host, now = socket.gethostname(), time.time()
        leases = [Lease.from_row(row) for row in rows]
        return {
            (lease.config_hash, lease.kind): lease
            for lease in leases
            if stale_reason(lease, now=now, host=host, stale_after_s=self.stale_after_s) is None
        }


class Heartbeat:
    """A daemon thread that refreshes the leases of a set of runs every ``interval_s`` seconds.

    ``on_lost(run_id)`` is called (from the thread) when a lease turns out to have been reclaimed by another
    process; the run id is then in :attr:`lost` and no longer beaten. A store that stays locked for one beat
    is not a lost lease: the beat is tried again next time.
    """

    def __init__(
        self,
        leases: TrialLeases,
        *,
        interval_s: float | None = None,
        on_lost: Callable[[str], None] | None = None,
    ):
        self.leases = leases
        self.interval_s = interval_s or leases.heartbeat_s
        self.on_lost = on_lost
        self.lost: set[str] = set()
        self._run_ids: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="medbench-lease-heartbeat", daemon=True)

    def add(self, run_id: str) -> None:
        with self._lock:
            self._run_ids.add(run_id)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._run_ids.discard(run_id)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                run_ids = sorted(self._run_ids)
            for run_id in run_ids:
                try:
                    alive = self.leases.heartbeat(run_id)
                except MedbenchError:
                    continue  # the store was busy for a whole timeout: try again on the next beat
                if alive:
                    continue
                self.discard(run_id)
                self.lost.add(run_id)
                if self.on_lost is not None:
                    self.on_lost(run_id)
