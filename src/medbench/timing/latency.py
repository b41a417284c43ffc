"""Latency of one callable, after timm's benchmark and MLPerf LoadGen's single-stream scenario.

Warm up until the timings settle, then call until both a minimum count and a minimum duration are reached;
every clock read comes right after a sync, so asynchronous device work is counted where it belongs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medbench.timing.statistics import summarize
from medbench.timing.sync import Clock, Sync, no_sync


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of a measured callable, in milliseconds, and how the measurement went."""

    count: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    warmup_count: int
    warmup_stable: bool  # False when warm-up stopped at its cap before the timings settled
    total_s: float  # wall time of the measured calls, syncs included
    hit_max_duration: bool  # True when max_duration_s stopped the run before min_count / min_duration_s
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def from_samples(
        cls,
        samples_s: Sequence[float],
        *,
        warmup_count: int = 0,
        warmup_stable: bool = True,
        total_s: float | None = None,
        hit_max_duration: bool = False,
    ) -> LatencyStats:
        """Builds the statistics from per-call durations in seconds."""
        ms = np.asarray(samples_s, dtype=np.float64) * 1e3
        stats = summarize(ms)
        return cls(
            count=stats["count"],
            mean_ms=stats["mean"],
            std_ms=stats["std"],
            min_ms=stats["min"],
            p50_ms=stats["p50"],
            p90_ms=stats["p90"],
            p99_ms=stats["p99"],
            max_ms=stats["max"],
            warmup_count=warmup_count,
            warmup_stable=warmup_stable,
            total_s=float(total_s) if total_s is not None else float(ms.sum() / 1e3),
            hit_max_duration=hit_max_duration,
            samples_ms=tuple(float(x) for x in ms),
        )

    def throughput(self, batch_size: int) -> float:
        """Samples per second when every call processes ``batch_size`` samples one call after another."""
        return batch_size * 1e3 / self.mean_ms if self.mean_ms > 0 else float("inf")

    def to_dict(self, prefix: str = "latency_") -> dict[str, float | int | bool]:
        """Flat, JSON-ready keys such as ``latency_p50_ms``; the raw samples are left out."""
        names = ("count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")
        names += ("warmup_count", "warmup_stable", "total_s", "hit_max_duration")
        return {f"{prefix}{name}": getattr(self, name) for name in names}


def _timed_call(fn: Callable[[], Any], sync: Sync, clock: Clock) -> tuple[float, float]:
    """Runs ``fn`` once; returns (start, end) clock readings, each taken right after a sync."""
    sync()  # drains work queued before this call so it is not billed to it
    start = clock()
    fn()
    sync()  # waits for the work this call queued (asynchronous dispatch would otherwise look free)
    return start, clock()


def _is_stable(durations: Sequence[float], window: int, tolerance: float) -> bool:
    """True when the median of the last ``window`` calls is within ``tolerance`` of the window before it."""
    if len(durations) < 2 * window:
        return False
    previous = float(np.median(durations[-2 * window : -window]))
    last = float(np.median(durations[-window:]))
    return abs(last - previous) <= tolerance * previous


def _warm_up(
    fn: Callable[[], Any],
    *,
    sync: Sync,
    clock: Clock,
    minimum: int,
    until_stable: bool,
    window: int,
    tolerance: float,
    maximum: int,
    max_s: float,
) -> tuple[int, bool]:
    """Calls ``fn`` until warm; returns (calls made, whether the timings settled)."""
    durations: list[float] = []
    first_start: float | None = None
    elapsed = 0.0
    while True:
        if len(durations) >= minimum:
            if not until_stable or _is_stable(durations, window, tolerance):
                return len(durations), True
            # A cap, so a function whose time never settles (thermal throttling, a noisy neighbour)
            # still gets measured; the flag in the result says so.
            if len(durations) >= maximum or elapsed >= max_s:
                return len(durations), False
        start, end = _timed_call(fn, sync, clock)
        first_start = start if first_start is None else first_start
        elapsed = end - first_start
        durations.append(end - start)


def measure_latency(
    fn: Callable[[], Any],
    *,
    sync: Sync | None = None,
    warmup_min: int = 5,
    warmup_until_stable: bool = True,
    stable_window: int = 5,
    stable_tolerance: float = 0.05,
    warmup_max: int = 200,
    warmup_max_s: float | None = None,
    min_count: int = 50,
    min_duration_s: float = 2.0,
    max_duration_s: float = 60.0,
    clock: Clock = time.perf_counter,
) -> LatencyStats:
    """Times ``fn()`` call by call after a warm-up (MLPerf single-stream: next call when the last returns).

    Warm-up makes at least ``warmup_min`` calls; with ``warmup_until_stable`` it goes on until the median of
    the last ``stable_window`` calls differs from that of the window before by at most ``stable_tolerance``
    (relative), capped at ``warmup_max`` calls or ``warmup_max_s`` seconds (default: ``max_duration_s``).
    The measurement then runs until *both* ``min_count`` calls and ``min_duration_s`` seconds are reached,
    or until ``max_duration_s`` stops it (flagged in the result). ``sync`` runs before every clock read.

    Args:
        fn: the work to time; its return value is ignored (the caller's ``sync`` must make it finish).
        sync: blocks until the device is idle, e.g. ``framework.synchronize``; None for CPU-only numpy code.
        clock: the clock to read; :func:`time.perf_counter` except in tests.

    Returns:
        Latency statistics in milliseconds; ``.throughput(batch_size)`` gives samples/s.

    Raises:
        ValueError: if a count or duration is out of range.
    """
    if min_count < 1 or warmup_min < 0 or stable_window < 1 or warmup_max < warmup_min:
        raise ValueError(
            "need min_count >= 1, warmup_min >= 0, stable_window >= 1 and warmup_max >= warmup_min"
        )
    if not 0 <= min_duration_s <= max_duration_s:
        raise ValueError(f"need 0 <= min_duration_s ({min_duration_s}) <= max_duration_s ({max_duration_s})")
    sync = sync or no_sync
    warmup_count, stable = _warm_up(
        fn,
        sync=sync,
        clock=clock,
        minimum=warmup_min,
        until_stable=warmup_until_stable,
        window=stable_window,
        tolerance=stable_tolerance,
        maximum=warmup_max,
        max_s=max_duration_s if warmup_max_s is None else warmup_max_s,
    )
    durations: list[float] = []
    begin = end = None
    hit_max = False
    while True:
        start, end = _timed_call(fn, sync, clock)
        begin = start if begin is None else begin
        durations.append(end - start)
        elapsed = end - begin
        if len(durations) >= min_count and elapsed >= min_duration_s:
            break
        if elapsed >= max_duration_s:
            hit_max = True
            break
    return LatencyStats.from_samples(
        durations,
        warmup_count=warmup_count,
        warmup_stable=stable,
        total_s=end - begin,
        hit_max_duration=hit_max,
    )
