"""Timing as a library: training phases, latency measurement, statistics and memory peaks.

One place knows how to warm up, synchronise and take percentiles, so every framework is measured the same way.
Nothing here imports a deep-learning framework: each framework passes its own ``sync`` function (for example
``Framework.synchronize``), which is called before *every* clock read so that queued device work is counted
where it belongs instead of leaking into the next measurement.

- :class:`Chrono` times a training run (after big_vision's ``Chrono``): named phases such as framework import,
  data load, model build and evaluation; the first (compiling) step apart from steady-state steps; training
  time without the evaluation pauses.
- :func:`measure_latency` times one callable (after timm's benchmark and MLPerf LoadGen's single-stream
  scenario): warm up until stable, then run until both a minimum count and a minimum duration are reached.
- :func:`summarize` and :class:`RepeatSummary` turn samples and repeats into figures worth reporting.
- :func:`peak_rss_bytes`, :func:`current_rss_bytes` and :func:`memory_usage` report host memory; the GPU peak
  is framework-specific and comes in as a callable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Sync = Callable[[], None]
Clock = Callable[[], float]

PERCENTILES: tuple[int, ...] = (50, 90, 99)


def _no_sync() -> None:
    """The sync of code that queues no device work (CPU-only numpy, or before a framework is imported)."""


# ---- statistics -----------------------------------------------------------------------------------------


def summarize(samples: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Count, mean, standard deviation, min, p50, p90, p99 and max of ``samples``, in their own unit.

    Percentiles use numpy's default (linear interpolation). The standard deviation is the sample one
    (``ddof=1``) because the samples estimate a distribution; a single sample has a spread of 0.

    Raises:
        ValueError: if ``samples`` is empty.
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot summarize an empty list of samples")
    p50, p90, p99 = np.percentile(values, PERCENTILES)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "min": float(values.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


@dataclass(frozen=True)
class RepeatSummary:
    """The median of repeated measurements and their spread, to report next to every median.

    A benchmark is repeated (new process, same config) because one run can be lucky; the median is the
    figure, the interquartile range and the min/max say how much to trust it.
    """

    n: int
    median: float
    q25: float
    q75: float
    min: float
    max: float

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray) -> RepeatSummary:
        """Summarises one figure (say images/s) over repeats.

        Raises:
            ValueError: if ``values`` is empty.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.size == 0:
            raise ValueError("cannot summarize an empty list of repeats")
        q25, median, q75 = np.percentile(array, (25, 50, 75))
        return cls(
            n=int(array.size),
            median=float(median),
            q25=float(q25),
            q75=float(q75),
            min=float(array.min()),
            max=float(array.max()),
        )

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    def to_dict(self, prefix: str = "") -> dict[str, float | int]:
        """Flat keys (``{prefix}median``, ``{prefix}q25`` ...) for a results row or a CSV column set."""
        return {
            f"{prefix}n": self.n,
            f"{prefix}median": self.median,
            f"{prefix}q25": self.q25,
            f"{prefix}q75": self.q75,
            f"{prefix}min": self.min,
            f"{prefix}max": self.max,
        }

    def format(self, unit: str = "", digits: int = 3) -> str:
        """For example ``"12.3 ms (IQR 11.9-12.8, range 11.5-13.0, n=5)"``; a single value shows no spread."""

        def fmt(value: float) -> str:
            return f"{value:.{digits}g}"

        suffix = f" {unit}" if unit else ""
        if self.n == 1:
            return f"{fmt(self.median)}{suffix} (n=1)"
        return (
            f"{fmt(self.median)}{suffix} (IQR {fmt(self.q25)}-{fmt(self.q75)}, "
            f"range {fmt(self.min)}-{fmt(self.max)}, n={self.n})"
        )


# ---- latency ------------------------------------------------------------------------------------------


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
    sync = sync or _no_sync
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


# ---- training runs ------------------------------------------------------------------------------------

# Phase names whose "<name>_s" key would overwrite one of Chrono.summary()'s own figures.
_RESERVED_PHASES = frozenset({"wall_total", "train", "first_step"})


class Chrono:
    """Times a training run: named phases, the first (compiling) step, steady-state steps, training time.

    Every clock read is preceded by ``sync`` (settable later, because the framework that provides it is
    imported inside the first phase). Rules:

    - ``with chrono.phase(name):`` times a phase (framework import, data load, model build, evaluation,
      checkpointing ...). Phases add up when repeated. A phase is never training: one that runs between
      training steps pauses the training clock. ``pause(name)``/``resume()`` do the same without ``with``.
    - ``with chrono.step(batch_size):`` times one training step. The first ``exclude_first_steps`` steps
      (compilation, autotuning, allocator warm-up) are kept apart from the steady-state statistics.
    - Training time runs from the start of the first step to the end of the last one, minus pauses: data
      loading between steps counts (unless it is wrapped in a phase), evaluation does not.

    Example::

        chrono = Chrono()
        with chrono.phase("framework_import"):
            fw = load_framework("torch")
        chrono.sync = fw.synchronize
        for epoch in range(epochs):
            for images, labels in batches:
                with chrono.step(len(images)):
                    trainer.train_step(images, labels)
            with chrono.phase("evaluation"):
                evaluate(...)
        timings = chrono.summary()
    """

    def __init__(
        self, *, sync: Sync | None = None, clock: Clock = time.perf_counter, exclude_first_steps: int = 1
    ):
        if exclude_first_steps < 0:
            raise ValueError("exclude_first_steps must be >= 0")
        self.sync: Sync | None = sync
        self._clock = clock
        self._exclude = exclude_first_steps
        self._started_at: float | None = None
        self._stopped_at: float | None = None
        self._phases: dict[str, float] = {}
        self._open: list[tuple[str, float]] = []  # a stack, so phases may nest
        self._pauses: list[tuple[float, float]] = []  # outermost phase intervals only: nested ones overlap
        self._excluded: list[float] = []
        self._steady: list[float] = []
        self._steady_images = 0
        self._images = 0
        self._first_step_start: float | None = None
        self._last_step_end: float | None = None

    def _now(self) -> float:
        (self.sync or _no_sync)()
        now = self._clock()
        if self._started_at is None:  # the wall total starts with the first reading unless start() came first
            self._started_at = now
        return now

    def start(self) -> None:
        """Starts the wall total now (otherwise the first phase or step starts it)."""
        if self._started_at is not None:
            raise RuntimeError("Chrono already started")
        self._now()

    def stop(self) -> None:
        """Ends the wall total; later summaries report the same figure."""
        if self._open:
            raise RuntimeError(f"phase {self._open[-1][0]!r} is still open")
        self._stopped_at = self._now()

    # ---- phases ----
    def pause(self, name: str) -> None:
        """Opens phase ``name``; training time stops counting until the matching :meth:`resume`."""
        if name in _RESERVED_PHASES:
            raise ValueError(f"phase name {name!r} is reserved for Chrono's own figures")
        self._open.append((name, self._now()))

    def resume(self) -> None:
        """Closes the innermost open phase and adds its time to that phase's total."""
        if not self._open:
            raise RuntimeError("resume() without an open phase")
        end = self._now()
        name, start = self._open.pop()
        self._phases[name] = self._phases.get(name, 0.0) + (end - start)
        if not self._open:
            self._pauses.append((start, end))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times the ``with`` block as phase ``name`` (kept even if the block raises)."""
        self.pause(name)
        try:
            yield
        finally:
            self.resume()

    # ---- steps ----
    @contextmanager
    def step(self, batch_size: int) -> Iterator[None]:
        """Times one training step over ``batch_size`` images; a step that raises is not recorded."""
        if self._open:
            raise RuntimeError(f"a training step inside phase {self._open[-1][0]!r}: close the phase first")
        start = self._now()
        yield
        end = self._now()
        if self._first_step_start is None:
            self._first_step_start = start
        self._last_step_end = end
        self._images += batch_size
        if len(self._excluded) < self._exclude:
            self._excluded.append(end - start)
        else:
            self._steady.append(end - start)
            self._steady_images += batch_size

    # ---- figures ----
    @property
    def first_step_s(self) -> float | None:
        """The first step, which includes compilation (None before any step, or when none is excluded)."""
        return self._excluded[0] if self._excluded else None

    @property
    def steady_step_times_s(self) -> tuple[float, ...]:
        return tuple(self._steady)

    @property
    def train_s(self) -> float:
        """Training time: first step start to last step end, without the phases (pauses) in between."""
        if self._first_step_start is None or self._last_step_end is None:
            return 0.0
        first, last = self._first_step_start, self._last_step_end
        paused = sum(max(0.0, min(end, last) - max(start, first)) for start, end in self._pauses)
        return last - first - paused

    def phases(self) -> dict[str, float]:
        """Seconds per closed phase, summed over repeats."""
        return dict(self._phases)

    def summary(self) -> dict[str, float | int | None]:
        """Flat, JSON-ready figures for the results store (seconds ``_s``, milliseconds ``_ms``).

        Keys: ``wall_total_s``, ``<phase>_s`` for every phase, ``steps``, ``images``, ``first_step_s``,
        ``steady_steps``, ``steady_step_mean_ms``, ``steady_step_median_ms``, ``steady_images_per_s``
        (images over the summed steady step times: the pure step rate), ``train_s`` and
        ``train_images_per_s`` (all images over training time: data loading and compilation included).
        """
        if self._open:
            raise RuntimeError(f"phase {self._open[-1][0]!r} is still open")
        end = self._stopped_at if self._stopped_at is not None else self._now()
        steady_total = sum(self._steady)
        train = self.train_s
        figures: dict[str, float | int | None] = {"wall_total_s": end - (self._started_at or end)}
        figures.update({f"{name}_s": seconds for name, seconds in self._phases.items()})
        figures.update(
            steps=len(self._excluded) + len(self._steady),
            images=self._images,
            first_step_s=self.first_step_s,
            steady_steps=len(self._steady),
            steady_step_mean_ms=float(np.mean(self._steady)) * 1e3 if self._steady else None,
            steady_step_median_ms=float(np.median(self._steady)) * 1e3 if self._steady else None,
            steady_images_per_s=self._steady_images / steady_total if steady_total > 0 else None,
            train_s=train,
            train_images_per_s=self._images / train if train > 0 else None,
        )
        return figures


# ---- memory -------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int | None:
    """The largest resident set size this process has had so far (not its children), in bytes.

    The peak cannot be reset: for a per-phase peak, run the phase in its own process (as medbench does for
    every framework run). None where the platform reports neither rusage nor a peak working set.
    """
    try:
        import resource
    except ImportError:  # Windows
        return _psutil_peak()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _psutil_peak() -> int | None:
    import psutil

    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)  # Windows only
    return int(peak) if peak is not None else None


def current_rss_bytes() -> int:
    """The resident set size of this process now, in bytes."""
    import psutil  # imported here so that importing medbench.timing stays cheap

    return int(psutil.Process().memory_info().rss)


def memory_usage(gpu_peak: Callable[[], int | None] | None = None) -> dict[str, int | None]:
    """Host memory now and at its peak, plus the framework's GPU peak when ``gpu_peak`` is given.

    Args:
        gpu_peak: returns the peak device memory in bytes (e.g. ``torch.cuda.max_memory_allocated``), or
            None when there is no GPU. It is framework-specific, hence a callable.
    """
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "current_rss_bytes": current_rss_bytes(),
        "gpu_peak_bytes": gpu_peak() if gpu_peak is not None else None,
    }
