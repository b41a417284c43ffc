"""Synthetic results-store rows of kind ``bench``, as dicts (what the summaries and plots read)."""

from __future__ import annotations

from typing import Any


def row(
    engine: str,
    size: int,
    *,
    p50: float = 1.0,
    throughput: dict[int, float] | None = None,
    cold: float = 2.0,
    compile_s: float = 0.5,
    outcome: str = "ok",
    model: str = "simple_cnn",
    flops: float | None = 1e6,
    peak: float | None = 1e10,
    fma_peak: float | None = 4e10,
    legacy_peak: bool = False,
    reason: str | None = None,
    experiment: str = "s1",
) -> dict[str, Any]:
    throughput = throughput if throughput is not None else {1: 1e3 / p50, 64: 2e3 / p50}
    metrics: dict[str, Any] = {"outcome": outcome}
    if outcome == "ok":
        metrics.update(
            latency_p50_ms=p50,
            latency_p99_ms=2 * p50,
            cold_start_s=cold,
            compile_s=compile_s,
            peak_rss_bytes=100 * 2**20,
            flops_per_image=flops,
            check_max_abs_diff=1e-7,
        )
        metrics.update({f"b{b}_images_per_s": v for b, v in throughput.items()})
        if legacy_peak:  # a row from before the FMA peak: one "peak", the best matrix product
            metrics["peak_flops_per_s"] = peak
        else:
            metrics.update(best_kernel_flops_per_s=peak, fma_peak_flops_per_s=fma_peak)
    elif outcome == "wrong":
        metrics.update(check_max_abs_diff=0.4, check_ok=False)
    return {
        "kind": "bench",
        "status": "completed" if outcome == "ok" else "failed",
        "failure_reason": reason if outcome != "ok" else None,
        "model": model,
        "size": size,
        "framework": engine.split("-")[0],
        "experiment": experiment,
        "config": {"engine": engine},
        "metrics": metrics,
    }
