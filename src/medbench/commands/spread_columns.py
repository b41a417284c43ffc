"""A median over repeats and its spread, as table columns: declared once for every table that shows one
(``medbench tune``, ``benchmarks/bench_train.py``), so a key such as ``images_per_s_min`` means the same
statistic in each table's CSV and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medbench.commands.output import Column

# the spread fields of medbench.timing.RepeatSummary, by the column name people read
SPREAD_NAMES = {"q25": "IQR low", "q75": "IQR high", "min": "min", "max": "max"}
MIN_MAX = ("min", "max")
IQR_AND_RANGE = ("q25", "q75", "min", "max")


def median_columns(
    name: str, key: str, digits: int, spread: Sequence[str] = MIN_MAX, *, spread_prefix: str = ""
) -> list[Column]:
    """The median's column (``name``, ``key``), then one per spread statistic, keyed ``{key}_{statistic}``;
    ``spread_prefix`` tells those apart from another median's in the same table (``ratio min``)."""
    return [
        Column(name, "float", digits, key=key),
        *(Column(f"{spread_prefix}{SPREAD_NAMES[s]}", "float", digits, key=f"{key}_{s}") for s in spread),
    ]


def median_cells(summary: Any, spread: Sequence[str] = MIN_MAX) -> list[float | None]:
    """The values of :func:`median_columns` from a :class:`medbench.timing.RepeatSummary`; all None without
    one (nothing measured)."""
    if summary is None:
        return [None] * (1 + len(spread))
    return [summary.median, *(getattr(summary, s) for s in spread)]
