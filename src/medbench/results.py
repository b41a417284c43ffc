"""The results store: one row per run, with its full config, environment, metrics and timings.

The store is one SQLite file (the argument, else ``$MEDBENCH_RESULTS``, else ``~/.medbench/results.sqlite``)
so that results need no server and survive as a single file to copy or archive. Design choices:

- **Several writers at once.** The orchestrator runs one process per framework run and each writes its own
  row. The file is in WAL mode (readers never block the writer), every operation is one short transaction on
  its own connection (safe across ``fork`` and threads), writers take the lock up front (``BEGIN IMMEDIATE``)
  and wait on ``busy_timeout``, and a ``database is locked`` that still gets through is retried with backoff.
- **Nothing finished is ever lost.** Every call commits. :meth:`ResultsStore.start_run` inserts a row with
  status ``running`` before the work starts; :meth:`~ResultsStore.finish_run` or
  :meth:`~ResultsStore.fail_run` closes it. A process killed mid-run leaves its row ``running`` and every
  other row intact; :meth:`~ResultsStore.mark_stale_running` later marks such rows ``interrupted``.
- **Traceable.** The full resolved config is stored as canonical JSON with its SHA-256
  (:func:`config_hash`), which also drives resume/skip (:meth:`~ResultsStore.find_completed`).
- **Versioned.** A ``meta`` table holds ``schema_version``. Older files are migrated by the functions in
  :data:`MIGRATIONS`; a file written by a newer medbench is refused with a clear error instead of being
  misread.

JSON columns hold strict JSON (non-finite floats become ``null``), so SQLite's own ``json_extract`` works on
them too. SQLite's WAL mode needs a local file system: keep the file off network shares.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import hashlib
import json
import math
import os
import random
import socket
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Literal, TypeVar

from medbench.errors import MedbenchError

SCHEMA_VERSION = 2
RESULTS_ENV_VAR = "MEDBENCH_RESULTS"

STATUSES: tuple[str, ...] = ("running", "completed", "failed", "interrupted")
# Columns list_runs() can filter on.
FILTERS: tuple[str, ...] = (
    "run_id",
    "kind",
    "status",
    "experiment",
    "framework",
    "model",
    "dataset",
    "size",
    "seed",
    "config_hash",
    "hostname",
)
JSON_COLUMNS: tuple[str, ...] = ("config", "dataset_provenance", "environment", "metrics", "timings")

_SQLITE_HEADER = b"SQLite format 3\x00"
_FIX_PATH = (
    f"Pass another file (--store PATH or ${RESULTS_ENV_VAR}), or move this one away and start a new store."
)

T = TypeVar("T")


class ResultsStoreError(MedbenchError):
    """The results file cannot be used: not a store, corrupt, locked too long, or from a newer medbench."""


class SchemaVersionError(ResultsStoreError):
    """A results file whose schema this medbench cannot read or migrate."""


class RunNotFoundError(ResultsStoreError, KeyError):
    """A run id that is not in the store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


# ---- schema -------------------------------------------------------------------------------------------

# Version 1, the base every file starts from; later versions are reached through MIGRATIONS, so a new file
# and a migrated one are the same by construction. Statuses are checked in Python rather than with CHECK,
# which SQLite cannot alter without rebuilding the table.
_BASE_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        failure_reason TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        experiment TEXT,
        framework TEXT,
        model TEXT,
        dataset TEXT,
        size INTEGER,
        seed INTEGER,
        config TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        dataset_provenance TEXT,
        environment TEXT,
        metrics TEXT,
        timings TEXT,
        checkpoint_path TEXT,
        hostname TEXT,
        pid INTEGER
    )""",
    "CREATE INDEX runs_by_config ON runs (config_hash, status)",
    "CREATE INDEX runs_by_subject ON runs (framework, model, dataset, size)",
    "CREATE INDEX runs_by_experiment ON runs (experiment)",
)

Migration = Callable[[sqlite3.Connection], None]
# MIGRATIONS[v] upgrades a version-v file to v + 1 inside the opening transaction (DDL is transactional in
# SQLite, so a failed migration leaves the file as it was). Add one with every SCHEMA_VERSION bump.


def _add_trial_leases(conn: sqlite3.Connection) -> None:
    """Version 2: the ``leases`` table, one row per trial being run (see :mod:`medbench.leases`).

    Keyed by (config_hash, kind), so a second claim of the same trial cannot insert a second lease; the
    holder's host, pid and the pid's start time tell a live holder from a dead one, and ``heartbeat_at``
    (epoch seconds) tells it across hosts.
    """
    conn.execute(
        """CREATE TABLE leases (
            config_hash TEXT NOT NULL,
            kind TEXT NOT NULL,
            run_id TEXT NOT NULL UNIQUE,
            hostname TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_started REAL,
            claimed_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL,
            PRIMARY KEY (config_hash, kind)
        )"""
    )


MIGRATIONS: dict[int, Migration] = {1: _add_trial_leases}


# ---- config hashing and JSON --------------------------------------------------------------------------


def to_jsonable(obj: Any, *, where: str = "value") -> Any:
    """``obj`` as plain JSON types: dicts with string keys, lists, str, int, float, bool, None.

    Understands tuples and sets (sets sorted, so their order cannot change a hash), paths, enums,
    dataclasses, pydantic models, datetimes and numpy scalars/arrays. Non-finite floats become None,
    so that the stored text is strict JSON.

    Raises:
        TypeError: for anything else, naming where in ``obj`` it sits.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value, where=where)
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value, where=f"{where}[{key!r}]") for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value, where=f"{where}[{i}]") for i, value in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [to_jsonable(value, where=where) for value in obj]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj), where=where)
    if hasattr(obj, "model_dump"):  # pydantic v2
        return to_jsonable(obj.model_dump(mode="json"), where=where)
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy, without importing it
        return to_jsonable(obj.tolist(), where=where)
    raise TypeError(f"{where} of type {type(obj).__name__} cannot be stored as JSON")


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the same content always gives the same text."""
    return json.dumps(
        to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config``; key order and tuple-vs-list do not matter.

    Validate and resolve the config first: ``1`` and ``1.0`` are different JSON and give different hashes.
    """
    from medbench.config import without_late_defaults

    plain = without_late_defaults(json.loads(canonical_json(config)))
    return hashlib.sha256(canonical_json(plain).encode("utf-8")).hexdigest()


def _dump(obj: Any) -> str | None:
    return None if obj is None else canonical_json(obj)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _utc_now() -> str:
    # Fixed width, so text order is time order in SQL.
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ---- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """One row of the store, with its JSON columns decoded."""

    run_id: str
    kind: str
    status: str
    failure_reason: str | None
    created_at: str
    finished_at: str | None
    experiment: str | None
    framework: str | None
    model: str | None
    dataset: str | None
    size: int | None
    seed: int | None
    config: dict[str, Any]
    config_hash: str
    dataset_provenance: dict[str, Any] | None
    environment: dict[str, Any] | None
    metrics: dict[str, Any] | None
    timings: dict[str, Any] | None
    checkpoint_path: str | None
    hostname: str | None
    pid: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        values = {name: row[name] for name in _COLUMNS}
        values.update({name: _load(values[name]) for name in JSON_COLUMNS})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RunRecord))


@dataclass
class ActiveRun:
    """What :meth:`ResultsStore.run` yields: fill ``metrics``, ``timings``, ``checkpoint_path`` as you go."""

    run_id: str
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None


# ---- the store ----------------------------------------------------------------------------------------


def default_results_path(path: str | os.PathLike | None = None) -> Path:
    """The store file: ``path``, else ``$MEDBENCH_RESULTS``, else ``$MEDBENCH_HOME/results.sqlite``
    (``~/.medbench/results.sqlite``)."""
    from medbench.paths import medbench_home

    chosen = path or os.environ.get(RESULTS_ENV_VAR) or medbench_home() / "results.sqlite"
    return Path(chosen).expanduser()


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


class ResultsStore:
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

    # ---- plumbing ----
    def _check_file(self) -> None:
        """Refuses, before SQLite sees it, a path that is a folder or a file that is not SQLite at all."""
        if self.path.is_dir():
            raise ResultsStoreError(
                f"The results store {self.path} is a folder.", "Pass a file path instead."
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("rb") as file:
                header = file.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return  # a new store
        except OSError as err:
            raise ResultsStoreError(
                f"Cannot open the results store {self.path}: {err.strerror or err}.",
                "Check that the folder exists and is writable, or pass another path.",
            ) from err
        if header and header != _SQLITE_HEADER:
            raise ResultsStoreError(
                f"{self.path} is not a medbench results store (not a SQLite file).", _FIX_PATH
            )

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN/COMMIT below), never opened behind our back.
        conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def _transact(self, op: Callable[[sqlite3.Connection], T], *, begin: str | None = "BEGIN IMMEDIATE") -> T:
        """Runs ``op`` in one transaction on a fresh connection, retrying while the file is locked.

        ``BEGIN IMMEDIATE`` takes the write lock up front: a deferred transaction that upgrades from read to
        write can fail with "database is locked" at once, without waiting on ``busy_timeout``.
        """
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                return self._attempt(op, begin)
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise self._error(err) from err
                if time.monotonic() >= deadline:
                    raise ResultsStoreError(
                        f"The results store {self.path} stayed locked for {self.timeout_s:g} s.",
                        "Another process holds a long write; try again, or raise the timeout.",
                    ) from err
                time.sleep(delay * (1 + random.random()))  # jitter, so waiting writers do not retry in step
                delay = min(delay * 2, 0.25)
            except sqlite3.DatabaseError as err:
                if type(err) is not sqlite3.DatabaseError:  # IntegrityError etc. are bugs, not a bad file
                    raise
                raise self._error(err) from err

    def _attempt(self, op: Callable[[sqlite3.Connection], T], begin: str | None) -> T:
        conn = self._connect()
        try:
            if begin:
                conn.execute(begin)
            try:
                result = op(conn)
                if begin:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        finally:
            conn.close()

    def _error(self, err: sqlite3.DatabaseError) -> ResultsStoreError:
        message = str(err)
        if "not a database" in message or "malformed" in message:
            return ResultsStoreError(f"The results store {self.path} is corrupt ({message}).", _FIX_PATH)
        return ResultsStoreError(
            f"Cannot use the results store {self.path}: {message}.",
            "Check that the file and its folder are writable and on a local disk (WAL mode needs one).",
        )

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Persistent in the file; WAL lets readers run while one process writes. Where the file system
        # cannot do WAL, SQLite keeps its rollback journal: slower under contention, still correct.
        conn.execute("PRAGMA journal_mode=WAL")

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables:
                raise ResultsStoreError(
                    f"{self.path} is a SQLite database but not a medbench results store "
                    f"(tables: {', '.join(sorted(tables))}).",
                    _FIX_PATH,
                )
            for statement in _BASE_SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
            conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (_utc_now(),))
        version = self._schema_version(conn)
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The results store {self.path} has schema version {version}, written by a newer medbench; "
                f"this one reads up to version {SCHEMA_VERSION}.",
                "Upgrade medbench (pip install -U medbench), or pass another results file.",
            )
        for old in range(version, SCHEMA_VERSION):
            self._migrate(conn, old)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise ResultsStoreError(
                f"The results store {self.path} has no valid schema_version.", _FIX_PATH
            ) from None

    def _migrate(self, conn: sqlite3.Connection, old: int) -> None:
        migration = MIGRATIONS.get(old)
        if migration is None:
            raise SchemaVersionError(
                f"The results store {self.path} has schema version {old} and medbench has no migration "
                f"from it to version {old + 1}.",
                "Open it with the medbench version that wrote it and export the runs, or start a new store.",
            )
        migration(conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(old + 1),))

    def schema_version(self) -> int:
        return self._transact(self._schema_version, begin="BEGIN")

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


# ---- export -------------------------------------------------------------------------------------------

ExportFormat = Literal["csv", "json", "parquet"]
_SUFFIXES: dict[str, ExportFormat] = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
# Flattened into "<group>.<key>" columns in CSV and Parquet; the other JSON columns stay JSON text there.
_FLATTENED: tuple[str, ...] = ("metrics", "timings", "config")


def _as_dict(run: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    return run.to_dict() if isinstance(run, RunRecord) else dict(run)


def _flatten(value: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            flat.update(_flatten(item, f"{prefix}{key}."))
        elif isinstance(item, list):
            flat[f"{prefix}{key}"] = json.dumps(item)  # per-class figures and the like stay one cell
        else:
            flat[f"{prefix}{key}"] = item
    return flat


def flatten_run(run: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """One flat row: the scalar columns, ``metrics.*``, ``timings.*`` and ``config.*`` columns, and the
    environment and dataset provenance as JSON text."""
    data = _as_dict(run)
    flat = {name: value for name, value in data.items() if name not in JSON_COLUMNS}
    for group in _FLATTENED:
        flat.update(_flatten(data.get(group) or {}, f"{group}."))
    for group in ("environment", "dataset_provenance"):
        flat[group] = None if data.get(group) is None else json.dumps(data[group], sort_keys=True)
    return flat


def _table(runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Flat rows and their columns: scalar columns in schema order, then the flattened groups, sorted."""
    rows = [flatten_run(run) for run in runs]
    seen = {key for row in rows for key in row}
    base = [name for name in _COLUMNS if name in seen and name not in JSON_COLUMNS]
    grouped = sorted(seen - set(base) - {"environment", "dataset_provenance"})
    tail = [name for name in ("environment", "dataset_provenance") if name in seen]
    return base + grouped + tail, rows


def _format_for(path: Path, format: str | None) -> ExportFormat:
    chosen = format or _SUFFIXES.get(path.suffix.lower())
    if chosen not in ("csv", "json", "parquet"):
        raise MedbenchError(
            f"Cannot tell the export format of {path} (format={format!r}).",
            "Use a .csv, .json or .parquet file name, or pass format='csv', 'json' or 'parquet'.",
        )
    return chosen  # type: ignore[return-value]


def export(
    runs: Iterable[RunRecord | Mapping[str, Any]], path: str | os.PathLike, format: ExportFormat | None = None
) -> Path:
    """Writes runs to CSV (flat), JSON (full and nested) or Parquet (flat, typed); returns the path.

    The format comes from ``format`` or the file suffix. The file is written next to its target and then
    renamed, so a failed export never leaves half a file.

    Raises:
        MedbenchError: for an unknown format, or Parquet without pyarrow installed.
    """
    target = Path(path).expanduser()
    chosen = _format_for(target, format)
    records = [_as_dict(run) for run in runs]
    writers = {"csv": _write_csv, "json": _write_json, "parquet": _write_parquet}
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        writers[chosen](records, Path(temp))
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return target


def _write_json(records: list[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_csv(records: list[dict[str, Any]], path: Path) -> None:
    columns, rows = _table(records)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _uniform(values: list[Any]) -> list[Any]:
    """One type per Parquet column: ints and floats together become floats, other mixtures text."""
    kinds = {type(value) for value in values if value is not None}
    if len(kinds) <= 1 or kinds == {int, float}:
        return [float(v) if v is not None and kinds == {int, float} else v for v in values]
    return [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]


def _write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MedbenchError(
            "Exporting to Parquet needs pyarrow, which is not installed.",
            "Install it with `pip install pyarrow`, or export to .csv or .json instead.",
        ) from None
    columns, rows = _table(records)
    data = {name: _uniform([row.get(name) for row in rows]) for name in columns}
    pq.write_table(pa.table(data), path)
