"""One measurement cell (engine x model x size, every batch size) inside a fresh worker process.

``python -m medbench.orchestration.worker JOB.json`` calls :func:`run_bench_job` for a job of kind ``bench``. In order:

1. **Prepare** the engine (import, build, load weights, ahead-of-time compile), each phase timed.
2. **First calls**, batch 1 first: the first prediction ends the *cold start*, measured from the parent's
   spawn timestamp (``job["spawned_at"]``, wall clock) to the first logits, minus the harness's own work
   (results store, loading the test inputs). Each batch size's first call is timed apart: for engines that
   compile lazily it holds the compilation.
3. **Same answers**: every first call's logits are compared with the reference (PyTorch eager fp32, same
   weights, same inputs). An engine that differs beyond tolerance is recorded as ``wrong`` and not timed.
4. **Timing**: :func:`medbench.timing.measure_latency` per batch size (warm-up until stable, minimum count
   and duration, the engine's ``sync`` before every clock read). Batch 1 is the single-stream latency; each
   batch size gives an offline throughput.
5. **Memory and FLOP/s**: peak RSS (and the GPU peak on a GPU); achieved FLOP/s at the best throughput and
   its fraction of each of the session's two ceilings (:mod:`medbench.bench.peak`): the FMA peak and the
   best framework kernel.

Compile time is ``compile`` phase + (batch-1 first call - steady batch-1 median): the part of the cold start
that a warm engine does not pay again.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medbench.bench.check import CheckResult, compare, merge
from medbench.bench.engines import EngineSpec, load_entry
from medbench.bench.peak import effective_flops, fraction
from medbench.frameworks.engine import PHASES, EngineRequest, PreparedEngine
from medbench.timing import Chrono, LatencyStats, measure_latency, peak_rss_bytes

OUTCOMES: tuple[str, ...] = ("ok", "wrong", "failed")


@dataclass
class CellResult:
    """What a cell found: ``outcome`` is ok, wrong or failed; ``reason`` says why when it is not ok."""

    outcome: str
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    engine_info: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


def _request(cell: dict[str, Any], spec: EngineSpec) -> EngineRequest:
    return EngineRequest(
        model=cell["model"],
        image_size=int(cell["image_size"]),
        in_channels=int(cell["in_channels"]),
        num_classes=int(cell["num_classes"]),
        weights=Path(cell["weights"]),
        batch_sizes=tuple(cell["batch_sizes"]),
        threads=cell.get("threads"),
        device=cell.get("device", "auto"),
        artifact=Path(cell["artifact"]) if cell.get("artifact") else None,
        options=dict(spec.options),
    )


def _prepare(cell: dict[str, Any], chrono: Chrono) -> PreparedEngine:
    spec = EngineSpec.from_dict(cell["engine"])
    with chrono.phase("import"):  # the engine module; its framework's import is timed inside prepare
        prepare = load_entry(spec.entry)
    return prepare(_request(cell, spec), chrono)


def _first_calls(
    engine: PreparedEngine, inputs: np.ndarray, reference: np.ndarray, batch_sizes, *, atol, rtol
) -> tuple[dict[int, float], float, CheckResult]:
    """Calls each batch size once (timed), checks its logits; returns (seconds per batch, the wall-clock
    end of the very first prediction, the merged check)."""
    seconds: dict[int, float] = {}
    checks: list[CheckResult] = []
    first_prediction_at = None
    for b in batch_sizes:
        batch = inputs[:b]
        engine.sync()
        start = time.perf_counter()
        outputs = engine.predict(batch)
        engine.sync()
        seconds[b] = time.perf_counter() - start
        if first_prediction_at is None:
            first_prediction_at = time.time()
        checks.append(compare(outputs, reference[:b], atol=atol, rtol=rtol))
    return seconds, first_prediction_at, merge(checks)


def _timed(engine: PreparedEngine, inputs: np.ndarray, batch_sizes, measurement: dict[str, Any]):
    from medbench.bench.plan import Measurement

    rules = Measurement(**measurement)
    stats: dict[int, LatencyStats] = {}
    for b in batch_sizes:
        batch = inputs[:b]
        stats[b] = measure_latency(
            lambda batch=batch: engine.predict(batch), sync=engine.sync, **rules.latency_kwargs(b)
        )
    return stats


def _latency_metrics(stats: dict[int, LatencyStats], first_calls: dict[int, float]) -> dict[str, Any]:
    metrics: dict[str, Any] = dict(stats[min(stats)].to_dict("latency_"))  # single stream: batch 1
    for b, s in stats.items():
        metrics.update(s.to_dict(f"b{b}_latency_"))
        metrics[f"b{b}_images_per_s"] = s.throughput(b)
        metrics[f"b{b}_first_call_s"] = first_calls[b]
    best = max(stats, key=lambda b: stats[b].throughput(b))
    metrics.update(best_images_per_s=stats[best].throughput(best), best_batch_size=best)
    return metrics


def _compile_metrics(
    stats: dict[int, LatencyStats], first_calls: dict[int, float], *, ahead_of_time: float
) -> dict[str, float]:
    """``compile_s``: ahead-of-time work plus what batch 1's first call took beyond a steady call (the
    cold start's share); ``compile_all_s``: the same summed over every batch size's first call."""
    excess = {b: max(0.0, first_calls[b] - stats[b].p50_ms / 1e3) for b in stats}
    return {
        "compile_s": ahead_of_time + excess[min(stats)],
        "compile_all_s": ahead_of_time + sum(excess.values()),
    }


def _flop_metrics(cell: dict[str, Any], images_per_s: float) -> dict[str, Any]:
    flops = cell.get("flops_per_image")
    fma, best = cell.get("fma_peak_flops_per_s"), cell.get("best_kernel_flops_per_s")
    achieved = effective_flops(flops, images_per_s)
    return {
        "flops_per_image": flops,
        "achieved_flops_per_s": achieved,
        "fma_peak_flops_per_s": fma,
        "best_kernel_flops_per_s": best,
        "fraction_of_fma_peak": fraction(achieved, fma),
        "fraction_of_best_kernel": fraction(achieved, best),
    }


def measure_cell(
    cell: dict[str, Any], *, spawned_at: float | None = None, chrono: Chrono | None = None
) -> CellResult:
    """Runs one cell in this process (see the module docstring). Exceptions propagate to the caller."""
    began = time.time()
    chrono = chrono or Chrono()
    batch_sizes = sorted(int(b) for b in cell["batch_sizes"])
    with chrono.phase("harness"):
        inputs = np.load(cell["inputs"])
        reference = np.load(cell["reference"])
    engine = _prepare(cell, chrono)
    first_calls, first_prediction_at, check = _first_calls(
        engine, inputs, reference, batch_sizes, atol=cell["atol"], rtol=cell["rtol"]
    )
    phases = chrono.phases()
    origin = spawned_at if spawned_at is not None else began
    metrics: dict[str, Any] = {
        "repeat": cell.get("repeat", 0),
        "cold_start_s": first_prediction_at - origin - phases.get("harness", 0.0),
        "cold_start_from": "parent spawn" if spawned_at is not None else "cell start",
        **{f"{name}_s": phases.get(name, 0.0) for name in PHASES},
        "first_call_s": first_calls[batch_sizes[0]],
        **check.to_dict(),
        "check_batch_sizes": batch_sizes,
        # an exported model's one-off export, done by the session in its own process: not in the cold start
        "export_s": (cell.get("artifact_info") or {}).get("export_s"),
    }
    timings = {f"{name}_s": seconds for name, seconds in phases.items()}
    if not check.ok:
        metrics["outcome"] = "wrong"
        return CellResult("wrong", metrics, timings, engine.info, f"wrong answers: {check.problem}")
    stats = _timed(engine, inputs, batch_sizes, cell["measurement"])
    metrics.update(_latency_metrics(stats, first_calls))
    metrics.update(_compile_metrics(stats, first_calls, ahead_of_time=phases.get("compile", 0.0)))
    metrics.update(_flop_metrics(cell, metrics["best_images_per_s"]))
    metrics.update(
        peak_rss_bytes=peak_rss_bytes(),
        gpu_peak_bytes=engine.gpu_peak_bytes() if engine.gpu_peak_bytes else None,
    )
    metrics["outcome"] = "ok"
    timings["measure_s"] = sum(s.total_s for s in stats.values())
    return CellResult("ok", metrics, timings, engine.info)


def _environment(cell: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    from medbench.environment import capture_environment

    engine = {"name": cell["engine"]["name"], "framework": cell["engine"]["framework"], **info}
    return capture_environment(extra={"engine": engine, "threads": cell.get("threads")})


def run_bench_job(job: dict[str, Any]) -> int:
    """The worker's entry for ``kind="bench"``: measures the cell, records one row, returns an exit code."""
    entered = time.time()
    from medbench.results import ResultsStore

    chrono = Chrono()
    cell = job["cell"]
    with chrono.phase("harness"):
        store = ResultsStore(job["store"])
        run_id = store.start_run(run_id=job.get("run_id"), **job["start"])
    try:
        result = measure_cell(cell, spawned_at=job.get("spawned_at"), chrono=chrono)
    except KeyboardInterrupt:
        store.fail_run(run_id, "interrupted by the user", status="interrupted")
        raise
    except BaseException as err:  # noqa: BLE001  (every failure is a row with a reason; the grid goes on)
        from medbench.errors import failure_reason

        reason = failure_reason(err)
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)  # the worker's log in a session; the row keeps it too
        metrics = {"outcome": "failed", "repeat": cell.get("repeat", 0), "traceback": trace[-4000:]}
        timings = {f"{name}_s": seconds for name, seconds in chrono.phases().items()}
        store.fail_run(run_id, reason, metrics=metrics, timings=timings)
        return 1
    if "worker_started_at" in job and job.get("spawned_at") is not None:
        # The cold start, decomposed: interpreter start-up, the worker's own imports (numpy included), then
        # the engine's phases (import_s, build_s, load_weights_s, compile phase) and its first call.
        result.metrics["interpreter_start_s"] = job["worker_started_at"] - job["spawned_at"]
        result.metrics["worker_start_s"] = entered - job["worker_started_at"]
    environment = _environment(cell, result.engine_info)
    if result.outcome == "ok":
        store.finish_run(run_id, metrics=result.metrics, timings=result.timings, environment=environment)
        return 0
    store.update_run(run_id, environment=environment)
    store.fail_run(run_id, result.reason or result.outcome, metrics=result.metrics, timings=result.timings)
    return 0  # a wrong engine is a finding, recorded; the worker did its job
