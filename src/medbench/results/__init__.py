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
  (:func:`medbench.config.config_hash`), which also drives resume/skip (:meth:`~ResultsStore.find_completed`).
- **Versioned.** A ``meta`` table holds ``schema_version``. Older files are migrated by the functions in
  :data:`MIGRATIONS`; a file written by a newer medbench is refused with a clear error instead of being
  misread.

JSON columns hold strict JSON (non-finite floats become ``null``), so SQLite's own ``json_extract`` works on
them too. SQLite's WAL mode needs a local file system: keep the file off network shares.

Modules: :mod:`~medbench.results.schema` (tables, versions, migrations, errors),
:mod:`~medbench.results.records` (rows as objects), :mod:`~medbench.results.connection` (the file, its
transactions and upgrades), :mod:`~medbench.results.store` (the operations) and
:mod:`~medbench.results.export`.
"""

from medbench.results.connection import default_results_path
from medbench.results.export import ExportFormat, export, flatten_run
from medbench.results.records import ActiveRun, RunRecord
from medbench.results.schema import (
    FILTERS,
    JSON_COLUMNS,
    RESULTS_ENV_VAR,
    SCHEMA_VERSION,
    STATUSES,
    ResultsStoreError,
    RunNotFoundError,
    SchemaVersionError,
)
from medbench.results.store import ResultsStore

__all__ = [
    "FILTERS",
    "JSON_COLUMNS",
    "RESULTS_ENV_VAR",
    "SCHEMA_VERSION",
    "STATUSES",
    "ActiveRun",
    "ExportFormat",
    "ResultsStore",
    "ResultsStoreError",
    "RunNotFoundError",
    "RunRecord",
    "SchemaVersionError",
    "default_results_path",
    "export",
    "flatten_run",
]
