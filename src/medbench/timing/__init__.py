"""Timing as a library: training phases, latency measurement, statistics and memory peaks.

One place knows how to warm up, synchronise and take percentiles, so every framework is measured the same way.
Nothing here imports a deep-learning framework: each framework passes its own ``sync`` function (for example
``Framework.synchronize``), which is called before *every* clock read so that queued device work is counted
where it belongs instead of leaking into the next measurement.

- :class:`Chrono` (:mod:`~medbench.timing.chrono`) times a training run (after big_vision's ``Chrono``):
  named phases such as framework import, data load, model build and evaluation; the first (compiling) step
  apart from steady-state steps; training time without the evaluation pauses.
- :func:`measure_latency` (:mod:`~medbench.timing.latency`) times one callable (after timm's benchmark and
  MLPerf LoadGen's single-stream scenario): warm up until stable, then run until both a minimum count and a
  minimum duration are reached.
- :func:`summarize` and :class:`RepeatSummary` (:mod:`~medbench.timing.statistics`) turn samples and
  repeats into figures worth reporting.
- :func:`peak_rss_bytes`, :func:`current_rss_bytes` and :func:`memory_usage` (:mod:`~medbench.timing.memory`)
  report host memory; the GPU peak is framework-specific and comes in as a callable.
"""

from medbench.timing.chrono import Chrono
from medbench.timing.latency import LatencyStats, measure_latency
from medbench.timing.memory import current_rss_bytes, memory_usage, peak_rss_bytes
from medbench.timing.statistics import PERCENTILES, RepeatSummary, summarize
from medbench.timing.sync import Clock, Sync

__all__ = [
    "PERCENTILES",
    "Chrono",
    "Clock",
    "LatencyStats",
    "RepeatSummary",
    "Sync",
    "current_rss_bytes",
    "measure_latency",
    "memory_usage",
    "peak_rss_bytes",
    "summarize",
]
