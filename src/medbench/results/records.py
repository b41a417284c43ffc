"""Rows of the store as Python objects, and how their JSON columns are written and read."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from medbench.jsonable import canonical_json
from medbench.results.schema import JSON_COLUMNS


def _dump(obj: Any) -> str | None:
    return None if obj is None else canonical_json(obj)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _utc_now() -> str:
    # Fixed width, so text order is time order in SQL.
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


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
