"""The same-answers check."""

from __future__ import annotations

import numpy as np

from medbench.bench.check import compare, merge


def _ref():
    return np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32) * 3


def test_identical_and_rounding_level_outputs_pass():
    ref = _ref()
    assert compare(ref, ref, atol=1e-3, rtol=1e-3).ok
    noisy = ref + np.float32(2e-4)
    result = compare(noisy, ref, atol=1e-3, rtol=1e-3)
    assert result.ok and abs(result.max_abs_diff - 2e-4) < 1e-6 and result.argmax_agreement == 1.0


def test_a_difference_beyond_tolerance_fails_and_says_where():
    ref = _ref()
    out = ref.copy()
    out[2, 5] += 0.5
    result = compare(out, ref, atol=1e-3, rtol=1e-3)
    assert not result.ok
    assert abs(result.max_abs_diff - 0.5) < 1e-6
    assert "(2, 5)" in result.problem


def test_relative_tolerance_scales_with_the_logit():
    ref = np.array([[100.0, 0.0]], dtype=np.float32)
    assert compare(ref + np.array([[0.05, 0.0]], np.float32), ref, atol=1e-3, rtol=1e-3).ok
    assert not compare(ref + np.array([[0.0, 0.05]], np.float32), ref, atol=1e-3, rtol=1e-3).ok


def test_wrong_shape_and_non_finite_outputs_fail():
    ref = _ref()
    assert "shape" in compare(ref[:, :4], ref, atol=1, rtol=1).problem
    bad = ref.copy()
    bad[0, 0] = np.nan
    assert "non-finite" in compare(bad, ref, atol=1, rtol=1).problem


def test_merge_keeps_the_worst():
    ref = _ref()
    good = compare(ref, ref, atol=1e-3, rtol=0)
    bad = compare(ref + 1, ref, atol=1e-3, rtol=0)
    merged = merge([good, bad])
    assert not merged.ok and merged.max_abs_diff == bad.max_abs_diff and merged.problem == bad.problem
    assert merge([good, good]).ok
