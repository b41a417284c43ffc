"""Rotation about the image centre by per-image angles, as one lookup per output pixel (tap) of the source.

It reads through the row and column maps of :mod:`~medbench.data.transforms.separable`, so with nearest
resizing a crop, a flip and a rotation still read the small source once.
"""

from __future__ import annotations

import math

import numpy as np

from medbench.data.transforms.separable import AxisPlan


def _offset_lut(plan: AxisPlan, pad: int, scale: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat lookup tables ``(this, next)`` from a (padded) output position to a term of the source offset.

    Entries outside the image or in a crop's fill band hold a large negative number, so any sum containing
    one stays negative and marks a fill pixel. ``next`` is shifted by one, for bilinear's second tap.
    """
    n, n_out = plan.i0.shape
    lut = np.full((n, n_out + 2 * pad + 1), _OUTSIDE, np.int64)
    lut[:, pad : pad + n_out] = np.where(plan.fill, _OUTSIDE, plan.i0 * scale + offsets[:, None])
    return lut[:, :-1].ravel(), lut[:, 1:].ravel()


_OUTSIDE = -(2**40)  # far below any real offset (a batch holds far fewer than 2**40 pixels)


def apply_rotation(
    src: np.ndarray, rows: AxisPlan, cols: AxisPlan, angles: np.ndarray, mode: str, fill: np.ndarray
) -> np.ndarray:
    """Rotates the images that ``rows``/``cols`` describe, reading the source once per output pixel (tap)."""
    n, h_in, w_in, c = src.shape
    h, w = rows.i0.shape[1], cols.i0.shape[1]
    # Rotated positions stay within the image's circumscribed circle; padding the lookup tables by its
    # radius keeps every index positive, so a float->int cast (which truncates) acts as floor.
    pad = math.ceil(math.hypot(h, w) / 2) + 2
    luts = (
        *_offset_lut(rows, pad, w_in, np.arange(n, dtype=np.int64) * h_in * w_in),
        *_offset_lut(cols, pad, 1, np.zeros(n, np.int64)),
    )
    pixels = src.reshape(-1, c)
    # math.cos/sin (libm), not numpy's SIMD versions, so the angles give the same values on every CPU.
    cos = np.array([math.cos(math.radians(a)) for a in angles], np.float32)
    sin = np.array([math.sin(math.radians(a)) for a in angles], np.float32)
    out_dtype = src.dtype if mode == "nearest" else np.float32
    out = np.empty((n, h, w, c), out_dtype)
    # A few images at a time keep the per-pixel index arrays in cache (about 2x faster at 224 px).
    chunk = max(1, _ROTATE_CHUNK_PIXELS // (h * w))
    for k0 in range(0, n, chunk):
        k1 = min(n, k0 + chunk)
        _rotate_chunk(pixels, luts, cos[k0:k1], sin[k0:k1], k0, (h, w, pad), mode, fill, out[k0:k1])
    return out


_ROTATE_CHUNK_PIXELS = 1 << 16


def _rotate_chunk(
    pixels: np.ndarray,
    luts: tuple[np.ndarray, ...],
    cos: np.ndarray,
    sin: np.ndarray,
    k0: int,
    geometry: tuple[int, int, int],
    mode: str,
    fill: np.ndarray,
    out: np.ndarray,
) -> None:
    h, w, pad = geometry
    row_lut, row_next, col_lut, col_next = luts
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy = (np.arange(h, dtype=np.float32) - np.float32(cy))[None, :, None]
    xx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, None, :]
    cos, sin = cos[:, None, None], sin[:, None, None]
    # Inverse map: output pixel (y, x) shows the input at (y, x) rotated back about the centre.
    half = 0.5 if mode == "nearest" else 0.0
    fy = (np.float32(cy + pad + half) + sin * xx) + cos * yy
    fx = (np.float32(cx + pad + half) + cos * xx) - sin * yy
    iy, ix = fy.astype(np.intp), fx.astype(np.intp)
    if mode != "nearest":
        wy, wx = (fy - iy)[..., None], (fx - ix)[..., None]  # weights of the second taps
    images = np.arange(k0, k0 + len(cos), dtype=np.intp)[:, None, None]
    iy += images * (h + 2 * pad)  # into image k's row of the lookup table
    ix += images * (w + 2 * pad)

    def tap(r_lut: np.ndarray, c_lut: np.ndarray, dest: np.ndarray | None = None) -> np.ndarray:
        offset = np.take(r_lut, iy, mode="clip")
        offset += np.take(c_lut, ix, mode="clip")
        # mode="clip" reads some real pixel for the negative (outside) offsets; they are then overwritten.
        values = np.take(pixels, offset, axis=0, mode="clip", out=dest)
        values[offset < 0] = fill
        return values

    if mode == "nearest":
        tap(row_lut, col_lut, out)
        return
    top = tap(row_lut, col_lut) * (1 - wx) + tap(row_lut, col_next) * wx
    bottom = tap(row_next, col_lut) * (1 - wx) + tap(row_next, col_next) * wx
    np.add(top * (1 - wy), bottom * wy, out=out)
