"""Least-squares scaling fits, on synthetic numbers."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.bench.scaling import fit_line, scaling, scaling_rows
from medbench.bench.summary import aggregate
from tests.bench.rows import row

SIZES = (28, 64, 128, 224)


def test_an_exact_line_is_recovered_with_r2_of_one():
    x = [0.1, 0.5, 1.0, 2.0]
    fit = fit_line(x, [3 + 2 * v for v in x])
    assert fit.intercept == pytest.approx(3) and fit.slope == pytest.approx(2) and fit.r2 == pytest.approx(1)
    assert fit.predict(4) == pytest.approx(11)


def test_noisy_points_match_numpy_and_lower_r2():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 20)
    y = 1 + 5 * x + rng.normal(0, 0.5, x.size)
    fit = fit_line(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert fit.slope == pytest.approx(slope) and fit.intercept == pytest.approx(intercept)
    assert 0.5 < fit.r2 < 1.0
    assert fit_line(x, rng.normal(0, 1, x.size)).r2 < 0.5  # no relation, no fit


def test_degenerate_inputs_are_refused():
    with pytest.raises(ValueError):
        fit_line([1.0], [2.0])
    with pytest.raises(ValueError):
        fit_line([1.0, 1.0], [2.0, 3.0])
    assert fit_line([1.0, 2.0], [5.0, 5.0]).r2 == 1.0  # flat and perfectly fitted


def test_engines_are_fitted_against_pixels_and_flops():
    # latency = 0.5 ms + 10 ms per megapixel; FLOPs not proportional to pixels (a small-input stem at 28 px)
    flops = {28: 4e8, 64: 3e8, 128: 1.2e9, 224: 3.6e9}
    rows = [row("onnx-torch", s, p50=0.5 + 10 * s * s / 1e6, flops=flops[s]) for s in SIZES]
    rows += [row("jax-jit", 28), row("jax-jit", 64, outcome="failed", reason="oom")]  # one size: no fit
    (fit,) = scaling(aggregate(rows))
    assert fit.engine == "onnx-torch" and fit.sizes == SIZES
    assert fit.latency_vs_mpixels.slope == pytest.approx(10) and fit.latency_vs_mpixels.r2 == pytest.approx(1)
    assert fit.latency_vs_mpixels.intercept == pytest.approx(0.5)
    assert fit.latency_vs_gflops.r2 < 1  # the same latencies are not a straight line in FLOPs
    assert fit.latency_growth == pytest.approx((0.5 + 10 * 224**2 / 1e6) / (0.5 + 10 * 28**2 / 1e6))
    (text,) = scaling_rows([fit])
    assert text["latency ms/Mpx"].startswith("10 (R² 1.000)")
