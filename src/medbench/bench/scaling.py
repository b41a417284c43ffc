"""How each engine's cost grows from 28 to 224 px: least-squares fits against pixels and against FLOPs.

For every (model, engine) with at least two measured sizes, the single-stream latency (median p50 of the
repeats, ms) and the offline cost per image (1000 / best images per second, ms) are fitted as
``a + b * x`` with ``x`` the pixels per image (in megapixels) and, separately, the FLOPs per image (in
GFLOPs). The slope is the marginal cost, the intercept the fixed per-call overhead, and R^2 says whether
a straight line describes the engine at all (a launch-bound engine is flat, then jumps). FLOPs and pixels
differ because ResNet's small-input stem (below 64 px) keeps full resolution. Numpy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from medbench.bench.summary import CellSummary


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope * x`` by least squares, with its coefficient of determination."""

    intercept: float
    slope: float
    r2: float
    n: int

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_line(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    """Ordinary least squares of ``y`` on ``x``.

    R^2 is ``1 - SS_res / SS_tot``; when every ``y`` is the same it is 1 for a perfect fit, else 0.

    Raises:
        ValueError: fewer than two points, mismatched lengths, or all ``x`` equal (no slope exists).
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of equal length, not {xs.shape} and {ys.shape}")
    if xs.size < 2:
        raise ValueError("a line needs at least two points")
    if np.ptp(xs) == 0:
        raise ValueError("all x values are equal: no slope can be fitted")
    design = np.column_stack([np.ones_like(xs), xs])
    (intercept, slope), *_ = np.linalg.lstsq(design, ys, rcond=None)
    residual = float(np.sum((ys - (intercept + slope * xs)) ** 2))
    total = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual <= 1e-24 else 0.0)
    return LinearFit(float(intercept), float(slope), r2, int(xs.size))


@dataclass(frozen=True)
class Scaling:
    """One engine on one model across image sizes."""

    model: str
    engine: str
    sizes: tuple[int, ...]
    latency_ms: tuple[float, ...]  # single stream, median p50
    per_image_ms: tuple[float, ...]  # offline, at the best batch size
    fraction_of_fma_peak: tuple[float | None, ...]
    fraction_of_best_kernel: tuple[float | None, ...]
    latency_vs_mpixels: LinearFit | None
    latency_vs_gflops: LinearFit | None
    per_image_vs_mpixels: LinearFit | None
    per_image_vs_gflops: LinearFit | None

    @property
    def latency_growth(self) -> float | None:
        """Latency at the largest size over latency at the smallest."""
        return self.latency_ms[-1] / self.latency_ms[0] if len(self.latency_ms) > 1 else None

    @property
    def throughput_drop(self) -> float | None:
        """Images per second at the smallest size over images per second at the largest."""
        return self.per_image_ms[-1] / self.per_image_ms[0] if len(self.per_image_ms) > 1 else None


def _fit(x: list[float], y: list[float]) -> LinearFit | None:
    try:
        return fit_line(x, y)
    except ValueError:
        return None


def scaling(summaries: Iterable[CellSummary]) -> list[Scaling]:
    """The fits of every (model, engine) with at least two successfully measured sizes."""
    groups: dict[tuple[str, str], list[CellSummary]] = {}
    for s in summaries:
        if s.status == "ok" and s.latency_p50_ms is not None and s.per_image_ms is not None:
            groups.setdefault((s.model, s.engine), []).append(s)
    out = []
    for (model, engine), cells in groups.items():
        cells = sorted(cells, key=lambda c: c.size)
        if len(cells) < 2:
            continue
        mpx = [c.size**2 / 1e6 for c in cells]
        latency = [c.latency_p50_ms.median for c in cells]  # type: ignore[union-attr]
        per_image = [c.per_image_ms for c in cells]  # type: ignore[misc]
        has_flops = all(c.flops_per_image for c in cells)
        gflops = [c.flops_per_image / 1e9 for c in cells] if has_flops else []  # type: ignore[operator]
        out.append(
            Scaling(
                model=model,
                engine=engine,
                sizes=tuple(c.size for c in cells),
                latency_ms=tuple(latency),
                per_image_ms=tuple(per_image),  # type: ignore[arg-type]
                fraction_of_fma_peak=tuple(c.fraction_of_fma_peak for c in cells),
                fraction_of_best_kernel=tuple(c.fraction_of_best_kernel for c in cells),
                latency_vs_mpixels=_fit(mpx, latency),
                latency_vs_gflops=_fit(gflops, latency) if has_flops else None,
                per_image_vs_mpixels=_fit(mpx, per_image),  # type: ignore[arg-type]
                per_image_vs_gflops=_fit(gflops, per_image) if has_flops else None,  # type: ignore[arg-type]
            )
        )
    return out


def _per_size(fractions: tuple[float | None, ...]) -> str:
    known = [p for p in fractions if p is not None]
    return "/".join(f"{100 * p:.0f}" for p in known) if known else "-"


def scaling_rows(fits: Iterable[Scaling]) -> list[dict[str, str]]:
    """Formatted rows: slopes (ms per Mpx and per GFLOP) with R^2, how latency grows and images per second
    drop from the smallest size to the largest, and the fractions of the FMA peak and of the best kernel at
    each size (%)."""

    def fit_text(fit: LinearFit | None) -> str:
        if fit is None:
            return "-"
        # two points always lie on a line: their R² says nothing
        return f"{fit.slope:.3g} (R² {fit.r2:.3f})" if fit.n > 2 else f"{fit.slope:.3g} (2 sizes)"

    rows = []
    for f in fits:
        rows.append(
            {
                "model": f.model,
                "engine": f.engine,
                "sizes": "-".join(map(str, f.sizes)),
                "latency ms/Mpx": fit_text(f.latency_vs_mpixels),
                "latency ms/GFLOP": fit_text(f.latency_vs_gflops),
                "offline ms/GFLOP": fit_text(f.per_image_vs_gflops),
                "latency growth": f"x{f.latency_growth:.3g}" if f.latency_growth else "-",
                "img/s drop": f"/{f.throughput_drop:.3g}" if f.throughput_drop else "-",
                "% of FMA peak": _per_size(f.fraction_of_fma_peak),
                "% of best kernel": _per_size(f.fraction_of_best_kernel),
            }
        )
    return rows
