"""Exports of runs to CSV, JSON or Parquet, with the metrics, timings and config flattened into columns."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from medbench.errors import MedbenchError
from medbench.results.records import _COLUMNS, RunRecord
from medbench.results.schema import JSON_COLUMNS

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
