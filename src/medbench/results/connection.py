"""The store file: checked before SQLite opens it, one short transaction per call with retries, schema
upgrades on opening (:class:`StoreFile`, the base of :class:`~medbench.results.store.ResultsStore`)."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from medbench.results import schema
from medbench.results.records import _utc_now
from medbench.results.schema import (
    _BASE_SCHEMA,
    _FIX_PATH,
    _SQLITE_HEADER,
    ResultsStoreError,
    SchemaVersionError,
    T,
)


def default_results_path(path: str | os.PathLike | None = None) -> Path:
    """The store file: ``path``, else ``$MEDBENCH_RESULTS``, else ``$MEDBENCH_HOME/results.sqlite``
    (``~/.medbench/results.sqlite``)."""
    from medbench.paths import medbench_home

    chosen = path or os.environ.get(schema.RESULTS_ENV_VAR) or medbench_home() / "results.sqlite"
    return Path(chosen).expanduser()


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


class StoreFile:
    """A results file opened the safe way; subclasses add the queries. Holds no open connection."""

    path: Path
    timeout_s: float

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
        if version > schema.SCHEMA_VERSION:
            raise SchemaVersionError(
                f"The results store {self.path} has schema version {version}, written by a newer medbench; "
                f"this one reads up to version {schema.SCHEMA_VERSION}.",
                "Upgrade medbench (pip install -U medbench), or pass another results file.",
            )
        for old in range(version, schema.SCHEMA_VERSION):
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
        migration = schema.MIGRATIONS.get(old)
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
