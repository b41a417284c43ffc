"""The results store's operations: start, update, finish and fail runs, sweep stale ones, read and find."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

from medbench.config import config_hash
from medbench.jsonable import canonical_json
from medbench.results.connection import StoreFile, default_results_path
from medbench.results.records import _COLUMNS, ActiveRun, RunRecord, _dump, _utc_now
from medbench.results.schema import FILTERS, JSON_COLUMNS, STATUSES, RunNotFoundError


class ResultsStore(StoreFile):
    """The SQLite results store. Cheap to create; holds no open connection between calls.

    Args:
        path: the store file; see :func:`default_results_path`. Missing folders are created.
        timeout_s: how long a write may wait for other writers before giving up.

    Raises:
        ResultsStoreError: if the file is not a medbench store, is corrupt, or cannot be created.
        SchemaVersionError: if it was written by a newer medbench, or no migration reaches this version.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout_s: float = 30.0):
        self.path = default_results_path(path)
        self.timeout_s = timeout_s
        self._check_file()
        self._transact(self._enable_wal, begin=None)
        self._transact(self._ensure_schema)

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r})"

    # ---- writing ----
    def start_run(
        self,
        *,
        kind: str,
        config: Mapping[str, Any],
        framework: str | None = None,
        model: str | None = None,
        dataset: str | None = None,
        size: int | None = None,
        seed: int | None = None,
        experiment: str | None = None,
        dataset_provenance: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Inserts (and commits) a row with status ``running``; returns its run id (a new UUID by default).

        Args:
            kind: what the run does: ``train``, ``evaluate``, ``bench`` ...
            config: the full resolved config; stored as canonical JSON with its :func:`config_hash`.
            dataset_provenance: where the data came from (file, MD5, split sizes).
            environment: usually :func:`medbench.environment.capture_environment`.
        """
        if not kind:
            raise ValueError("kind must be a non-empty string")
        run_id = run_id or str(uuid.uuid4())
        config_text = canonical_json(config)
        row = {
            "run_id": run_id,
            "kind": kind,
            "status": "running",
            "created_at": _utc_now(),
            "experiment": experiment,
            "framework": framework,
            "model": model,
            "dataset": dataset,
            "size": size,
            "seed": seed,
            "config": config_text,
            "config_hash": config_hash(config),
            "dataset_provenance": _dump(dataset_provenance),
            "environment": _dump(environment),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),  # with the hostname: lets mark_stale_running tell a dead run from a live one
        }
        sql = f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._transact(lambda conn: conn.execute(sql, tuple(row.values())))
        return run_id

    def update_run(self, run_id: str, **values: Any) -> None:
        """Records progress on a run that is not finished: ``metrics``, ``timings``, ``checkpoint_path``,
        ``environment`` or ``dataset_provenance`` (each replaces the stored value; None leaves it)."""
        allowed = {"metrics", "timings", "checkpoint_path", "environment", "dataset_provenance"}
        unknown = set(values) - allowed
        if unknown:
            raise TypeError(
                f"update_run() cannot set {', '.join(sorted(unknown))}; it sets {', '.join(sorted(allowed))}"
            )
        self._close_or_update(run_id, status=None, values=values)

    def finish_run(
        self,
        run_id: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        checkpoint_path: str | os.PathLike | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        """Marks a run ``completed`` and stores its results (a None argument keeps the stored value)."""
        values = {
            "metrics": metrics,
            "timings": timings,
            "checkpoint_path": checkpoint_path,
            "environment": environment,
        }
        self._close_or_update(run_id, status="completed", values=values)

    def fail_run(
        self,
        run_id: str,
        reason: str,
        *,
        status: Literal["failed", "interrupted"] = "failed",
        metrics: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
    ) -> None:
        """Marks a run ``failed`` (or ``interrupted``) with a reason, keeping partial metrics and timings."""
        if status not in ("failed", "interrupted"):
            raise ValueError(f"fail_run() status must be 'failed' or 'interrupted', not {status!r}")
        values = {"failure_reason": reason, "metrics": metrics, "timings": timings}
        self._close_or_update(run_id, status=status, values=values)

    def reopen_run(self, run_id: str) -> None:
        """Marks an unfinished run ``running`` again, in this process: a resumed run keeps its one row.

        The reason and end time of its interruption are cleared; its metrics and timings stay until the
        resumed run replaces them.

        Raises:
            RunNotFoundError: no such run.
            ValueError: the run is already completed (a result is never reopened).
        """

        def write(conn: sqlite3.Connection) -> None:
            if self._status(conn, run_id) == "completed":
                raise ValueError(f"run {run_id} is already completed")
            conn.execute(
                "UPDATE runs SET status = 'running', failure_reason = NULL, finished_at = NULL, "
                "hostname = ?, pid = ? WHERE run_id = ?",
                (socket.gethostname(), os.getpid(), run_id),
            )

        self._transact(write)

    def _close_or_update(self, run_id: str, *, status: str | None, values: Mapping[str, Any]) -> None:
        encoded: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name in JSON_COLUMNS:
                encoded[name] = _dump(value)
            else:
                encoded[name] = str(value) if isinstance(value, os.PathLike) else value
        if status is not None:
            encoded.update(status=status, finished_at=_utc_now())

        def write(conn: sqlite3.Connection) -> None:
            current = self._status(conn, run_id)
            if current == "completed":
                # A completed run is a result; nothing may turn it into something else.
                raise ValueError(f"run {run_id} is already completed")
            if encoded:
                assignments = ", ".join(f"{name} = ?" for name in encoded)
                conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*encoded.values(), run_id))

        self._transact(write)

    def _status(self, conn: sqlite3.Connection, run_id: str) -> str:
        row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(
                f"No run {run_id!r} in {self.path}.", "List the runs with `medbench results`."
            )
        return row[0]

    @contextmanager
    def run(self, **start: Any) -> Iterator[ActiveRun]:
        """Starts a run, yields an :class:`ActiveRun` to fill, and finishes it, or fails it on an exception.

        ``KeyboardInterrupt`` marks the run ``interrupted``, any other exception ``failed`` with the
        exception as the reason; the exception is then re-raised. Arguments are those of :meth:`start_run`.
        """
        active = ActiveRun(self.start_run(**start))
        try:
            yield active
        except BaseException as err:
            status: Literal["failed", "interrupted"] = (
                "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            )
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            self.fail_run(
                active.run_id,
                reason,
                status=status,
                metrics=active.metrics or None,
                timings=active.timings or None,
            )
            raise
        self.finish_run(
            active.run_id,
            metrics=active.metrics,
            timings=active.timings,
            checkpoint_path=active.checkpoint_path,
        )

    def mark_stale_running(
        self,
        *,
        older_than_s: float | None = None,
        status: Literal["interrupted", "failed"] = "interrupted",
    ) -> list[str]:
        """Closes ``running`` rows whose process is gone; returns their run ids.

        A row is stale when it was started on this host by a process that no longer exists (a pid reused by
        a newer process counts as gone), or, on any host, when it started more than ``older_than_s`` seconds
        ago. Rows of live processes are left alone.
        """
        host, now = socket.gethostname(), time.time()

        def sweep(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT run_id, hostname, pid, created_at FROM runs WHERE status = 'running'")
            stale: list[str] = []
            for run_id, hostname, pid, created_at in rows.fetchall():
                started = datetime.fromisoformat(created_at).timestamp()
                if hostname == host and pid is not None and not _process_alive(pid, started):
                    reason = f"its process ({pid} on {hostname}) ended without finishing the run"
                elif older_than_s is not None and now - started > older_than_s:
                    reason = (
                        f"still running {now - started:.0f} s after it started (limit {older_than_s:g} s)"
                    )
                else:
                    continue
                conn.execute(
                    "UPDATE runs SET status = ?, failure_reason = ?, finished_at = ? WHERE run_id = ?",
                    (status, reason, _utc_now(), run_id),
                )
                stale.append(run_id)
            return stale

        return self._transact(sweep)

    # ---- reading ----
    def import_run(self, record: Mapping[str, Any]) -> str:
        """Inserts a finished row taken from another store (e.g. a Ray node's), keeping its run id.

        Used to gather trials that ran elsewhere into one store; a row with the same run id is replaced,
        so gathering twice is harmless.
        """
        row = {name: record.get(name) for name in _COLUMNS}
        if not row["run_id"] or not row["kind"] or row["status"] not in STATUSES:
            raise ValueError(f"not a run record: {sorted(k for k in record if record.get(k) is not None)}")
        row_config = row["config"] or {}
        row["config"] = canonical_json(row_config)
        row["config_hash"] = config_hash(row_config)
        for name in JSON_COLUMNS:
            if name != "config":
                row[name] = _dump(row[name])
        sql = f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._transact(lambda conn: conn.execute(sql, tuple(row.values())))
        return row["run_id"]

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique id prefix (as typed from a listing).

        Raises:
            RunNotFoundError: if no run (or more than one) matches.
        """

        def read(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchall()
            if rows or len(run_id) < 4 or not set(run_id) <= set("0123456789abcdef-"):
                return rows
            return conn.execute("SELECT * FROM runs WHERE run_id LIKE ? LIMIT 2", (run_id + "%",)).fetchall()

        rows = self._transact(read, begin="BEGIN")
        if len(rows) != 1:
            problem = (
                f"No run {run_id!r} in {self.path}."
                if not rows
                else f"Run id prefix {run_id!r} is ambiguous."
            )
            raise RunNotFoundError(problem, "List the runs with `medbench results` and use a full id.")
        return RunRecord.from_row(rows[0])

    def list_runs(self, *, limit: int | None = None, **filters: Any) -> list[RunRecord]:
        """Runs matching every filter, oldest first.

        A filter value may be a single value, a list/tuple/set (any of them), or None (the column is empty).
        Filters: see :data:`FILTERS`.
        """
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise TypeError(f"unknown filter {', '.join(sorted(unknown))}; use {', '.join(FILTERS)}")
        clauses, params = [], []
        for name, value in filters.items():
            if value is None:
                clauses.append(f"{name} IS NULL")
            elif isinstance(value, (list, tuple, set, frozenset)):
                values = list(value)
                clauses.append(f"{name} IN ({', '.join('?' * len(values))})" if values else "0")
                params.extend(values)
            else:
                clauses.append(f"{name} = ?")
                params.append(value)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        sql += " ORDER BY created_at, rowid" + (f" LIMIT {int(limit)}" if limit is not None else "")
        rows = self._transact(lambda conn: conn.execute(sql, params).fetchall(), begin="BEGIN")
        return [RunRecord.from_row(row) for row in rows]

    def find_completed(self, config_hash: str, *, kind: str | None = None) -> RunRecord | None:
        """The latest completed run with this config hash (and kind), for resume and skip logic."""
        filters: dict[str, Any] = {"config_hash": config_hash, "status": "completed"}
        if kind is not None:
            filters["kind"] = kind
        runs = self.list_runs(**filters)
        return runs[-1] if runs else None


def _process_alive(pid: int, started: float) -> bool:
    """Whether ``pid`` is still the process that started a run at ``started`` (epoch seconds)."""
    import psutil  # imported here: only the stale sweep needs it

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # A process created after the run started cannot have started it: the pid was reused.
        return process.create_time() <= started + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; assume it is ours rather than close a live run
