"""Resampling along one axis: where each output pixel reads from (nearest, bilinear), and back to the dtype."""

from __future__ import annotations

from typing import Literal

import numpy as np

ResizeMethod = Literal["nearest", "bilinear"]
RESIZE_METHODS: tuple[str, ...] = ("nearest", "bilinear")


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel for nearest resizing, with half-pixel centres.

    ``floor((i + 0.5) * n_in / n_out)``, computed in integers: the convention of PIL's NEAREST and torch's
    ``nearest-exact``. For an integer upsampling factor ``k`` it is ``i // k``, i.e. ``np.repeat``.
    """
    return ((2 * np.arange(n_out, dtype=np.intp) + 1) * n_in) // (2 * n_out)


def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two source indices and the weight of the second, per output pixel, for bilinear resizing.

    Half-pixel centres (torch ``align_corners=False``, PIL), clamped at the borders. Without antialiasing:
    for upsampling this equals PIL's BILINEAR; for downsampling PIL widens the filter and averages more.
    """
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results back to an integer dtype, rounding half up and clipping, as PIL does for uint8."""
    if values.dtype == dtype or np.issubdtype(dtype, np.floating):
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.floor(values + 0.5), info.min, info.max).astype(dtype)
