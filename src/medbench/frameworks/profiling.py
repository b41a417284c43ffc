"""What every back-end's ``profile.py`` hands back: a step's breakdown and a table of its costliest operations.

Nothing here imports a framework. Each back-end measures its own way (see its ``profile.py``) and fills
these shapes, so the training loop stores, and the report shows, the same fields for every framework:

* :func:`breakdown`: the steady step in milliseconds, split into host-to-device, forward, backward and
  optimizer, with what is left (``other_ms``: Python, the loss read back, parts that overlap), the medians
  of a few repeats, and ``method``: how the framework was timed.
* :func:`top_table`: the ``top`` operations by time per step from the framework's own profiler, each with
  its kind (``Conv2DBackpropFilter``, ``aten::convolution_backward``, ``convolution``), a detail (shapes,
  which pass), ms per step and share of all operation time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

PARTS = ("host_to_device", "forward", "backward", "optimizer")


def breakdown(samples: Mapping[str, Sequence[float]], *, method: str) -> dict[str, Any]:
    """Milliseconds per part (the median of each part's repeats, in seconds in ``samples``) and the step.

    ``samples`` holds ``step`` and every part of :data:`PARTS`, one value per repeat.
    """
    ms = {name: float(np.median(samples[name])) * 1e3 for name in ("step", *PARTS)}
    out: dict[str, Any] = {f"{name}_ms": round(value, 3) for name, value in ms.items()}
    out["other_ms"] = round(ms["step"] - sum(ms[p] for p in PARTS), 3)
    out["repeats"] = len(samples["step"])
    out["method"] = method
    return out


def step_rounds(measure_round: Callable[[], Sequence[float]], repeats: int) -> dict[str, list[float]]:
    """The ``samples`` of :func:`breakdown`: ``repeats`` rounds of ``measure_round`` (the step's seconds, then
    each part's of :data:`PARTS`), after a first round that warms up (traces, compiles) and is not kept."""
    samples: dict[str, list[float]] = {name: [] for name in ("step", *PARTS)}
    for round_ in range(repeats + 1):
        values = measure_round()
        if round_:
            for name, value in zip(samples, values, strict=True):
                samples[name].append(value)
    return samples


def parts_of_programs(step: float, host_to_device: float, forward: float, both: float) -> tuple[float, ...]:
    """One round of :func:`step_rounds` from separately compiled programs (JAX, Keras on JAX or TensorFlow):
    the whole step, the transfer, forward, forward+backward (``both``) timed apart; backward is ``both`` -
    forward and the optimizer what the step has beyond transfer and ``both``."""
    return step, host_to_device, forward, both - forward, step - host_to_device - both


def timed(fn: Callable[[], Any], sync: Callable[[Any], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` takes with its result ready (``sync(result)`` blocks until it is), and the result."""
    start = time.perf_counter()
    result = fn()
    sync(result)
    return time.perf_counter() - start, result


def top_table(
    totals: Mapping[str, tuple[float, int]],
    *,
    steps: int,
    top: int,
    profiler: str,
    kinds: Mapping[str, str] | None = None,
    details: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``top`` entries of ``totals`` (name -> (milliseconds over ``steps`` steps, calls)) per step.

    ``share`` is of the time of *all* operations the profiler saw, which on a multi-threaded runtime can
    exceed the wall time (operations that run side by side).
    """
    kinds, details = kinds or {}, details or {}
    everything = sum(ms for ms, _ in totals.values())
    ranked = sorted(totals.items(), key=lambda item: -item[1][0])[:top]
    return {
        "profiler": profiler,
        "steps": steps,
        "unit": "ms per step",
        "total_ms": round(everything / steps, 3),
        "operations": [
            {
                "name": name,
                "kind": kinds.get(name, name),
                "detail": details.get(name, ""),
                "ms_per_step": round(ms / steps, 3),
                "calls_per_step": round(calls / steps, 2),
                "share": round(ms / everything, 4) if everything else 0.0,
            }
            for name, (ms, calls) in ranked
        ],
    }
