"""Tests of medbench.timing, mostly with a fake clock: the logic, never the speed of this machine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pytest

from medbench.timing import (
    Chrono,
    LatencyStats,
    RepeatSummary,
    current_rss_bytes,
    measure_latency,
    memory_usage,
    peak_rss_bytes,
    summarize,
)


class FakeClock:
    """A clock that only moves when told to, and checks that a sync came before every reading."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0
        self.syncs = 0
        self._synced = False
        self.unsynced_reads = 0

    def sync(self) -> None:
        self.syncs += 1
        self._synced = True

    def __call__(self) -> float:
        self.reads += 1
        if not self._synced:
            self.unsynced_reads += 1
        self._synced = False
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def fake_work(clock: FakeClock, durations: list[float], default: float) -> Callable[[], None]:
    """A function whose n-th call takes durations[n] seconds of fake time, then ``default``."""
    calls = iter(durations)

    def fn() -> None:
        clock.advance(next(calls, default))

    return fn


# ---- summarize / RepeatSummary ------------------------------------------------------------------------


def test_summarize_matches_numpy_on_known_samples():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 7.0, 6.0, 9.0, 8.0]
    stats = summarize(samples)
    assert stats["count"] == 10
    assert stats["mean"] == pytest.approx(5.5)
    assert stats["std"] == pytest.approx(np.std(samples, ddof=1))
    assert (stats["min"], stats["max"]) == (1.0, 10.0)
    assert stats["p50"] == pytest.approx(5.5)
    assert stats["p90"] == pytest.approx(np.percentile(samples, 90)) == pytest.approx(9.1)
    assert stats["p99"] == pytest.approx(np.percentile(samples, 99)) == pytest.approx(9.91)


def test_summarize_single_sample_and_empty():
    assert summarize([2.0])["std"] == 0.0
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_repeat_summary_median_iqr_and_range():
    summary = RepeatSummary.from_values([10.0, 12.0, 11.0, 30.0, 9.0])
    assert summary.median == 11.0
    assert (summary.q25, summary.q75) == (10.0, 12.0)
    assert summary.iqr == 2.0
    assert (summary.min, summary.max, summary.n) == (9.0, 30.0, 5)
    assert summary.to_dict("ips_")["ips_median"] == 11.0
    assert summary.format("ms") == "11 ms (IQR 10-12, range 9-30, n=5)"
    assert RepeatSummary.from_values([3.0]).format() == "3 (n=1)"
    with pytest.raises(ValueError):
        RepeatSummary.from_values([])


# ---- measure_latency ----------------------------------------------------------------------------------


def test_measure_latency_syncs_before_every_clock_read():
    clock = FakeClock()
    measure_latency(
        fake_work(clock, [], 0.01), sync=clock.sync, clock=clock, warmup_min=3, min_count=7, min_duration_s=0
    )
    assert clock.reads > 0
    assert clock.unsynced_reads == 0
    assert clock.syncs == clock.reads


def test_measure_latency_min_count_dominates_when_calls_are_slow_enough():
    clock = FakeClock()
    stats = measure_latency(
        fake_work(clock, [], 0.5),
        sync=clock.sync,
        clock=clock,
        warmup_until_stable=False,
        warmup_min=2,
        min_count=20,
        min_duration_s=1.0,  # reached after 2 calls: the count must still be honoured
    )
    assert stats.count == 20
    assert stats.warmup_count == 2
    assert not stats.hit_max_duration


def test_measure_latency_min_duration_dominates_when_calls_are_fast():
    clock = FakeClock()
    stats = measure_latency(
        fake_work(clock, [], 1 / 64),  # exact in binary, so the stopping point is exact too
        sync=clock.sync,
        clock=clock,
        warmup_until_stable=False,
        warmup_min=0,
        min_count=5,  # reached after 5/64 s: the duration must still be honoured
        min_duration_s=2.0,
    )
    # The first reading opens the measurement, so call n ends at n/64 s.
    assert stats.count == 128
    assert stats.total_s == pytest.approx(2.0)
    assert stats.mean_ms == pytest.approx(15.625)
    assert stats.throughput(batch_size=32) == pytest.approx(2048.0)


def test_measure_latency_stops_at_max_duration_and_says_so():
    clock = FakeClock()
    stats = measure_latency(
        fake_work(clock, [], 1.0),
        sync=clock.sync,
        clock=clock,
        warmup_until_stable=False,
        warmup_min=0,
        min_count=1000,
        min_duration_s=1.0,
        max_duration_s=5.0,
    )
    assert stats.hit_max_duration
    assert stats.count == 5


def test_warmup_stops_once_stable_and_slow_calls_are_not_measured():
    clock = FakeClock()
    slow_start = [0.100, 0.050, 0.020]  # compilation, then caches filling
    stats = measure_latency(
        fake_work(clock, slow_start, 0.010),
        sync=clock.sync,
        clock=clock,
        warmup_min=2,
        stable_window=3,
        stable_tolerance=0.05,
        min_count=10,
        min_duration_s=0,
    )
    # Medians of consecutive windows of 3: [100,50,20]->50 vs 10, [50,20,10]->20 vs 10, [20,10,10]->10 vs 10.
    assert stats.warmup_count == 8
    assert stats.warmup_stable
    assert stats.count == 10
    assert stats.max_ms == pytest.approx(10.0)


def test_warmup_cap_is_reported_when_timings_never_settle():
    clock = FakeClock()
    growing = [0.01 * 1.5**i for i in range(100)]
    stats = measure_latency(
        fake_work(clock, growing, 1.0),
        sync=clock.sync,
        clock=clock,
        warmup_min=2,
        stable_window=2,
        warmup_max=12,
        min_count=3,
        min_duration_s=0,
    )
    assert stats.warmup_count == 12
    assert not stats.warmup_stable


def test_latency_percentiles_match_numpy():
    clock = FakeClock()
    durations = [0.001 * (i % 17 + 1) for i in range(50)]
    stats = measure_latency(
        fake_work(clock, durations, 0.001),
        sync=clock.sync,
        clock=clock,
        warmup_until_stable=False,
        warmup_min=0,
        min_count=50,
        min_duration_s=0,
    )
    expected = np.asarray(durations) * 1e3
    assert stats.samples_ms == pytest.approx(list(expected))
    assert stats.p50_ms == pytest.approx(np.percentile(expected, 50))
    assert stats.p90_ms == pytest.approx(np.percentile(expected, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(expected, 99))
    assert stats.std_ms == pytest.approx(np.std(expected, ddof=1))
    assert json.loads(json.dumps(stats.to_dict()))["latency_count"] == 50


def test_measure_latency_on_the_real_clock_times_every_call_after_the_warm_up():
    """With the real perf_counter and no sync: each timed call is one call of fn, and a call that sleeps
    2 ms is never measured shorter (a lower bound, so the machine's load cannot fail it)."""
    calls = []

    def work():
        calls.append(None)
        time.sleep(0.002)

    stats = measure_latency(work, warmup_min=2, warmup_until_stable=False, min_count=5, min_duration_s=0)
    assert stats.count == 5 and len(calls) == 2 + 5
    assert stats.min_ms >= 2.0 and stats.p50_ms >= stats.min_ms
    assert stats.total_s >= 5 * 0.002


@pytest.mark.parametrize(
    "kwargs",
    [{"min_count": 0}, {"min_duration_s": 5.0, "max_duration_s": 1.0}, {"warmup_min": 10, "warmup_max": 5}],
)
def test_measure_latency_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        measure_latency(lambda: None, **kwargs)


def test_latency_stats_from_samples():
    stats = LatencyStats.from_samples([0.002, 0.004])
    assert (stats.mean_ms, stats.total_s) == (pytest.approx(3.0), pytest.approx(0.006))


# ---- Chrono -------------------------------------------------------------------------------------------


def test_chrono_first_step_excluded_from_steady_state():
    clock = FakeClock()
    chrono = Chrono(sync=clock.sync, clock=clock)
    for seconds in (5.0, 0.1, 0.1, 0.3):
        with chrono.step(batch_size=10):
            clock.advance(seconds)
    summary = chrono.summary()
    assert summary["first_step_s"] == pytest.approx(5.0)
    assert summary["steady_steps"] == 3
    assert summary["steps"] == 4
    assert summary["images"] == 40
    assert summary["steady_step_mean_ms"] == pytest.approx(500 / 3)
    assert summary["steady_step_median_ms"] == pytest.approx(100.0)
    assert summary["steady_images_per_s"] == pytest.approx(30 / 0.5)
    assert clock.unsynced_reads == 0


def test_chrono_evaluation_is_not_training_time():
    clock = FakeClock()
    chrono = Chrono(sync=clock.sync, clock=clock)
    chrono.start()
    with chrono.phase("data_load"):
        clock.advance(2.0)  # before training: not in train_s either
    for _epoch in range(2):
        for _ in range(3):
            clock.advance(0.05)  # data loading between steps is training time
            with chrono.step(batch_size=4):
                clock.advance(1.0)
        with chrono.phase("evaluation"):
            clock.advance(7.0)
    chrono.stop()
    summary = chrono.summary()
    assert summary["evaluation_s"] == pytest.approx(14.0)
    assert summary["data_load_s"] == pytest.approx(2.0)
    # first step start .. last step end = 6 steps + 5 gaps + 1 evaluation in between
    assert summary["train_s"] == pytest.approx(6 * 1.0 + 5 * 0.05)
    assert summary["train_images_per_s"] == pytest.approx(24 / 6.25)
    assert summary["wall_total_s"] == pytest.approx(2.0 + 6 * 1.05 + 14.0)
    assert clock.unsynced_reads == 0


def test_chrono_pause_resume_and_nested_phases():
    clock = FakeClock()
    chrono = Chrono(sync=clock.sync, clock=clock, exclude_first_steps=0)
    with chrono.step(1):
        clock.advance(1.0)
    chrono.pause("evaluation")
    clock.advance(3.0)
    with chrono.phase("metrics"):  # nested: counted once in the pause
        clock.advance(1.0)
    chrono.resume()
    with chrono.step(1):
        clock.advance(1.0)
    assert chrono.phases() == {"evaluation": pytest.approx(4.0), "metrics": pytest.approx(1.0)}
    assert chrono.train_s == pytest.approx(2.0)
    assert chrono.first_step_s is None
    assert chrono.steady_step_times_s == pytest.approx((1.0, 1.0))


def test_chrono_sync_can_be_attached_after_the_framework_import():
    clock = FakeClock()
    chrono = Chrono(clock=clock)
    with chrono.phase("framework_import"):
        clock.advance(3.0)
    chrono.sync = clock.sync
    with chrono.step(8):
        clock.advance(1.0)
    assert clock.syncs == 2
    assert chrono.summary()["framework_import_s"] == pytest.approx(3.0)


def test_chrono_misuse_is_refused():
    clock = FakeClock()
    chrono = Chrono(clock=clock)
    with pytest.raises(RuntimeError):
        chrono.resume()
    with pytest.raises(ValueError, match="reserved"):
        chrono.pause("train")
    chrono.pause("evaluation")
    with pytest.raises(RuntimeError, match="evaluation"), chrono.step(1):
        pass
    with pytest.raises(RuntimeError, match="still open"):
        chrono.summary()


def test_chrono_failed_step_is_not_recorded():
    clock = FakeClock()
    chrono = Chrono(clock=clock)
    with pytest.raises(ZeroDivisionError), chrono.step(4):
        1 / 0  # noqa: B018
    assert chrono.summary()["steps"] == 0


def test_chrono_summary_is_json_ready_without_steps():
    chrono = Chrono()
    summary = json.loads(json.dumps(chrono.summary()))
    assert summary["steady_images_per_s"] is None and summary["first_step_s"] is None
    assert summary["train_s"] == 0.0 and summary["steps"] == 0


# ---- memory -------------------------------------------------------------------------------------------


def test_memory_figures_are_plausible():
    ballast = np.ones(8 * 1024 * 1024 // 8)  # 8 MiB that must show up in the peak
    peak, current = peak_rss_bytes(), current_rss_bytes()
    assert peak is not None
    assert peak >= ballast.nbytes
    assert peak >= current * 0.5  # same unit (bytes), not kilobytes
    usage = memory_usage(gpu_peak=lambda: 1234)
    assert usage["gpu_peak_bytes"] == 1234
    assert memory_usage()["gpu_peak_bytes"] is None
