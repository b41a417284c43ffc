"""Benchmark rows -> one summary per cell (engine x model x size): medians over repeats with their spread.

Reads results-store rows (:class:`medbench.results.RunRecord` or their dicts) of kind ``bench``, so the
CLI table, the plots and later reports share one aggregation. Every figure is a
:class:`medbench.timing.RepeatSummary` over the repeats: the median, and the min-max range that is shown
next to it (with three repeats an interquartile range would be an interpolation between them). Numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medbench.bench.peak import best_kernel_of, effective_flops, fraction
from medbench.timing import RepeatSummary

STATUSES: tuple[str, ...] = ("ok", "wrong", "failed")


def field_of(record: Any, name: str) -> Any:
    """A column of a row, whether a ``RunRecord`` or a dict."""
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name)


def outcome_of(record: Any) -> str:
    """ok, wrong or failed: the cell's own verdict, else the row's status (a crashed worker wrote none)."""
    metrics = field_of(record, "metrics") or {}
    outcome = metrics.get("outcome")
    if outcome in STATUSES:
        return outcome
    return "ok" if field_of(record, "status") == "completed" else "failed"


def engine_of(record: Any) -> str:
    return (field_of(record, "config") or {}).get("engine", "?")


@dataclass(frozen=True)
class CellSummary:
    """One engine x model x size over its repeats. ``status`` is wrong if any repeat was, failed if none
    succeeded, ok otherwise (``reason`` then names failed repeats, if any)."""

    model: str
    engine: str
    size: int
    framework: str | None
    status: str
    reason: str | None
    runs: int
    ok_runs: int
    latency_p50_ms: RepeatSummary | None = None
    latency_p99_ms: RepeatSummary | None = None
    throughput: dict[int, RepeatSummary] = field(default_factory=dict)  # images/s per batch size
    cold_start_s: RepeatSummary | None = None
    compile_s: RepeatSummary | None = None
    peak_rss_bytes: RepeatSummary | None = None
    flops_per_image: float | None = None
    fma_peak_flops_per_s: float | None = None  # theoretical, measured clock (see medbench.bench.peak)
    best_kernel_flops_per_s: float | None = None  # the fastest framework kernel (older rows: best matmul)
    check_max_abs_diff: float | None = None

    @property
    def best_throughput(self) -> tuple[int, RepeatSummary] | None:
        """(batch size, images/s) of the batch size with the highest median throughput."""
        if not self.throughput:
            return None
        batch = max(self.throughput, key=lambda b: self.throughput[b].median)
        return batch, self.throughput[batch]

    @property
    def per_image_ms(self) -> float | None:
        """Offline cost of one image at the best batch size, in ms (1000 / images per second)."""
        best = self.best_throughput
        return 1e3 / best[1].median if best and best[1].median > 0 else None

    @property
    def achieved_flops_per_s(self) -> float | None:
        """Effective FLOP/s (model FLOPs x images per second) at the best batch size."""
        best = self.best_throughput
        return effective_flops(self.flops_per_image, best[1].median) if best else None

    @property
    def fraction_of_fma_peak(self) -> float | None:
        return fraction(self.achieved_flops_per_s, self.fma_peak_flops_per_s)

    @property
    def fraction_of_best_kernel(self) -> float | None:
        return fraction(self.achieved_flops_per_s, self.best_kernel_flops_per_s)


def _repeat(rows: Sequence[dict[str, Any]], key: str) -> RepeatSummary | None:
    values = [row[key] for row in rows if isinstance(row.get(key), (int, float))]
    return RepeatSummary.from_values(values) if values else None


def _batch_sizes(rows: Sequence[dict[str, Any]]) -> list[int]:
    sizes = {
        int(k[1 : -len("_images_per_s")])
        for row in rows
        for k in row
        if k.startswith("b") and k.endswith("_images_per_s") and k[1 : -len("_images_per_s")].isdigit()
    }
    return sorted(sizes)


def _status(outcomes: list[str], reasons: list[str | None]) -> tuple[str, str | None]:
    if "wrong" in outcomes:
        return "wrong", next(r for o, r in zip(outcomes, reasons, strict=True) if o == "wrong")
    failed = [r for o, r in zip(outcomes, reasons, strict=True) if o == "failed"]
    if len(failed) == len(outcomes):
        return "failed", failed[0]
    if failed:
        return "ok", f"{len(failed)} of {len(outcomes)} repeats failed: {failed[0]}"
    return "ok", None


def summarize_cell(records: Sequence[Any]) -> CellSummary:
    """The summary of one cell's rows (all of the same engine, model and size)."""
    first = records[0]
    outcomes = [outcome_of(r) for r in records]
    status, reason = _status(outcomes, [field_of(r, "failure_reason") for r in records])
    ok = [field_of(r, "metrics") or {} for r, o in zip(records, outcomes, strict=True) if o == "ok"]
    every = [field_of(r, "metrics") or {} for r in records]
    checked = [
        m["check_max_abs_diff"] for m in every if isinstance(m.get("check_max_abs_diff"), (int, float))
    ]
    flops = next((m["flops_per_image"] for m in ok if m.get("flops_per_image")), None)
    fma = next((m["fma_peak_flops_per_s"] for m in ok if m.get("fma_peak_flops_per_s")), None)
    best_kernel = next((b for m in ok if (b := best_kernel_of(m))), None)
    return CellSummary(
        model=field_of(first, "model"),
        engine=engine_of(first),
        size=int(field_of(first, "size")),
        framework=field_of(first, "framework"),
        status=status,
        reason=reason,
        runs=len(records),
        ok_runs=len(ok),
        latency_p50_ms=_repeat(ok, "latency_p50_ms"),
        latency_p99_ms=_repeat(ok, "latency_p99_ms"),
        throughput={b: s for b in _batch_sizes(ok) if (s := _repeat(ok, f"b{b}_images_per_s"))},
        cold_start_s=_repeat(ok, "cold_start_s"),
        compile_s=_repeat(ok, "compile_s"),
        peak_rss_bytes=_repeat(ok, "peak_rss_bytes"),
        flops_per_image=flops,
        fma_peak_flops_per_s=fma,
        best_kernel_flops_per_s=best_kernel,
        check_max_abs_diff=max(checked) if checked else None,
    )


def aggregate(records: Iterable[Any]) -> list[CellSummary]:
    """One summary per (model, engine, size) among the ``bench`` rows, in the order they first appear,
    sizes ascending within an engine."""
    groups: dict[tuple[str, str, int], list[Any]] = {}
    for record in records:
        if field_of(record, "kind") != "bench" or field_of(record, "status") == "running":
            continue
        key = (field_of(record, "model"), engine_of(record), int(field_of(record, "size")))
        groups.setdefault(key, []).append(record)
    models = list(dict.fromkeys(k[0] for k in groups))
    engines = list(dict.fromkeys(k[1] for k in groups))
    order = sorted(groups, key=lambda k: (models.index(k[0]), engines.index(k[1]), k[2]))
    return [summarize_cell(groups[key]) for key in order]


# ---- formatting ------------------------------------------------------------------------------------------


def _g(value: float, digits: int) -> str:
    """``digits`` significant digits, but whole numbers from 1000 up (``12,345`` rather than ``1.23e+04``)."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def format_spread(summary: RepeatSummary | None, digits: int = 3, scale: float = 1.0) -> str:
    """``"1.23 (1.20-1.31)"``: the median and, with several repeats, the min-max range; ``-`` if none."""
    if summary is None:
        return "-"
    median = _g(summary.median * scale, digits)
    if summary.n == 1:
        return median
    return f"{median} ({_g(summary.min * scale, digits)}-{_g(summary.max * scale, digits)})"


def percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal, ``-`` when unknown."""
    return f"{100 * value:.1f}" if value else "-"


# the columns of table_rows that hold numbers (shown right-aligned in every table)
NUMERIC_COLUMNS: tuple[str, ...] = (
    "size",
    "p50 ms (range)",
    "p99 ms",
    "best img/s (batch)",
    "cold start s",
    "compile s",
    "peak RSS MiB",
    "% of FMA peak",
    "% of best kernel",
    "max |diff|",
)


def table_rows(summaries: Iterable[CellSummary]) -> list[dict[str, str]]:
    """Formatted cells of the summary table (one dict per engine x model x size)."""
    rows = []
    for s in summaries:
        best = s.best_throughput
        rows.append(
            {
                "model": s.model,
                "engine": s.engine,
                "size": str(s.size),
                "p50 ms (range)": format_spread(s.latency_p50_ms),
                "p99 ms": format_spread(s.latency_p99_ms).split(" ")[0],
                "best img/s (batch)": f"{format_spread(best[1])} (b{best[0]})" if best else "-",
                "cold start s": format_spread(s.cold_start_s),
                "compile s": format_spread(s.compile_s),
                "peak RSS MiB": format_spread(s.peak_rss_bytes, scale=2**-20),
                "% of FMA peak": percent(s.fraction_of_fma_peak),
                "% of best kernel": percent(s.fraction_of_best_kernel),
                "max |diff|": f"{s.check_max_abs_diff:.1e}" if s.check_max_abs_diff is not None else "-",
                "status": s.status if s.status == "ok" or not s.reason else f"{s.status}: {s.reason}",
            }
        )
    return rows
