"""Inference latency between frameworks, from the stored benchmark rows: at each (model, size), each
framework's fastest engine, compared pairwise as a ratio with its spread over the benchmark's repeats."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from medbench.report.pooling import is_number
from medbench.report.style import framework_sort_key
from medbench.results import RunRecord
from medbench.stats.seeds import DEFAULT_ALPHA
from medbench.stats.speed import Ratio, speed_ratio


@dataclass
class LatencyPair:
    """Each framework's fastest inference engine (median single-stream p50) at one (model, size), compared."""

    model: str
    size: int
    a: str
    engine_a: str
    b: str
    engine_b: str
    median_a_ms: float
    median_b_ms: float
    ratio: Ratio


def compare_latency(runs: Sequence[RunRecord], *, alpha: float = DEFAULT_ALPHA) -> list[LatencyPair]:
    """Inference latency between frameworks: at each (model, size), each framework's fastest engine (lowest
    median p50 over repeats), compared pairwise on the repeats' p50."""
    from medbench.bench.summary import engine_of, outcome_of

    values: dict[tuple[str, int], dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.kind != "bench" or outcome_of(r) != "ok":
            continue
        p50 = (r.metrics or {}).get("latency_p50_ms")
        if is_number(p50) and r.model and r.size:
            values[(r.model, int(r.size))][(r.framework or "?", engine_of(r))].append(float(p50))
    out = []
    for (model, size), by_engine in sorted(values.items()):
        best: dict[str, tuple[str, list[float]]] = {}
        for (fw, engine), v in by_engine.items():
            if fw not in best or statistics.median(v) < statistics.median(best[fw][1]):
                best[fw] = (engine, v)
        for a, b in combinations(sorted(best, key=framework_sort_key), 2):
            (ea, va), (eb, vb) = best[a], best[b]
            ratio = speed_ratio(va, vb, higher_is_better=False, alpha=alpha)
            if ratio is not None:
                out.append(
                    LatencyPair(
                        model, size, a, ea, b, eb, statistics.median(va), statistics.median(vb), ratio
                    )
                )
    return out
