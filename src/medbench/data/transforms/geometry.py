"""The pipeline's one geometric step: resizing and augmentation, each output pixel gathered once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medbench.data.transforms.augment import Augment, AugmentParams, draw_augment_params
from medbench.data.transforms.resampling import RESIZE_METHODS, ResizeMethod, round_to
from medbench.data.transforms.rotation import apply_rotation
from medbench.data.transforms.separable import apply_separable, axis_plan


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"resize target must be positive, got {size}")
    return int(h), int(w)


def resize(images: np.ndarray, size: int | Sequence[int], method: ResizeMethod = "nearest") -> np.ndarray:
    """Resizes a batch ``(N, H, W)`` or ``(N, H, W, C)`` to ``size`` (an int for square, or ``(h, w)``).

    Nearest keeps the dtype and moves values only (for an integer factor it equals ``np.repeat`` on both
    axes). Bilinear is computed in float32, separably (columns, then rows); uint8 input comes back as uint8
    rounded half up, like PIL, which also rounds between its two passes and so may differ by one level.
    This is the pipeline's own code path (:func:`geometric_transform` without augmentation).
    """
    x = images if images.ndim == 4 else images[..., None]
    out = geometric_transform(x, size=size, resize_method=method)
    return out if images.ndim == 4 else out[..., 0]


def geometric_transform(
    images: np.ndarray,
    *,
    size: int | Sequence[int] | None = None,
    resize_method: ResizeMethod = "nearest",
    params: AugmentParams | None = None,
    fill: float | Sequence[float] | np.ndarray = 0,
) -> np.ndarray:
    """Resizes to ``size`` and applies augmentation ``params``, gathering each output pixel once.

    The result equals resizing and then cropping, flipping and rotating one after another at the output
    size; but resizing, crops and flips are composed into per-image row and column plans (and, with nearest
    resizing, into the rotation's lookup), so a 28 -> 224 batch is read straight from the 28 px source.

    Args:
        images: NHWC batch, any dtype (the pipeline passes normalised float32).
        size: output side (or ``(h, w)``); None keeps the input size.
        resize_method: "nearest" or "bilinear".
        params: per-image augmentation draws, or None for none.
        fill: value (or per-channel values) shown where a crop or rotation leaves the image.

    Returns:
        A new NHWC array of the input dtype (bilinear results are rounded half up for integer dtypes).
    """
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}, got {resize_method!r}")
    n, h_in, w_in, c = images.shape
    h, w = _as_hw(size) if size is not None else (h_in, w_in)
    if params is None and (h, w) == (h_in, w_in):
        return images.copy()
    params = params if params is not None else AugmentParams.identity(n)
    rows = axis_plan(h_in, h, params.shift_y, params.vflip, resize_method)
    cols = axis_plan(w_in, w, params.shift_x, params.hflip, resize_method)
    blends = rows.bilinear or cols.bilinear or (params.rotates and params.rotate_mode == "bilinear")
    work = images.astype(np.float32) if blends and not np.issubdtype(images.dtype, np.floating) else images
    fill_values = np.broadcast_to(np.asarray(fill, dtype=work.dtype), (c,))
    if not params.rotates:
        return round_to(apply_separable(work, rows, cols, fill_values), images.dtype)
    if rows.bilinear or cols.bilinear:  # materialise the bilinear resize, then rotate that
        work = apply_separable(work, rows, cols, fill_values)
        rows, cols = (axis_plan(s, s, np.zeros(n, np.intp), np.zeros(n, bool), "nearest") for s in (h, w))
    out = apply_rotation(work, rows, cols, params.angles, params.rotate_mode, fill_values)
    return round_to(out, images.dtype)


def augment_batch(
    images: np.ndarray, augment: Augment, key: Sequence[int], *, fill: float | Sequence[float] = 0
) -> np.ndarray:
    """Draws parameters from ``key`` and applies them: the pipeline's augmentation, on its own."""
    return geometric_transform(images, params=draw_augment_params(augment, len(images), key), fill=fill)
