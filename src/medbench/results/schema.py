"""The store's tables, its schema version, the migrations between versions, and its errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

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
