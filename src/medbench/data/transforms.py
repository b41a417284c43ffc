"""Numpy image transforms for the batch pipeline: normalisation, resizing and seeded augmentation.

Everything works on NHWC batches ``(N, H, W, C)`` and returns new arrays; no deep-learning framework is used,
so every framework is fed bit-identical values.

The pipeline normalises at the stored resolution first (at 28 px that is 64 times fewer pixels than at 224)
and then does every geometric step as index gathers on float32 values, with the fill colour set to the
normalised value of a black pixel. Nearest resizing, flips, padded crops and nearest rotations only move
values, so this gives exactly the batch that normalising last would give, at a fraction of the cost.
Nearest resizing, flips and crops are composed into one row map and one column map per image, so an
augmented 28 -> 224 batch is gathered once from the small source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ResizeMethod = Literal["nearest", "bilinear"]
RESIZE_METHODS: tuple[str, ...] = ("nearest", "bilinear")

# Seed-stream tags, one per augmentation: each op draws from its own generator, so enabling one op never
# changes the random values another op sees. Non-zero, because numpy's SeedSequence pads entropy with zeros.
_CROP, _HFLIP, _VFLIP, _ROTATE = 1, 2, 3, 4
FLIP_PROBABILITY = 0.5
# torchvision's ImageNet statistics (RGB, [0, 1] scale): what its pretrained weights were trained on.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


# ---- normalisation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x / 255 - mean) / std``, with ``mean`` and ``std`` on the [0, 1] pixel scale.

    One value is broadcast to every channel (so the official mean = std = 0.5 fits grey and RGB alike).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} need the same, non-zero, number of values")
        if not all(math.isfinite(m) for m in self.mean) or not all(
            math.isfinite(s) and s > 0 for s in self.std
        ):
            raise ValueError(
                f"mean must be finite and std finite and positive, got {self.mean} and {self.std}"
            )

    @classmethod
    def official(cls) -> Normalization:
        """The MedMNIST baseline: mean = std = 0.5, i.e. pixels scaled to [-1, 1]."""
        return cls((0.5,), (0.5,), "official")

    @classmethod
    def none(cls) -> Normalization:
        """No standardisation: pixels only scaled to [0, 1]."""
        return cls((0.0,), (1.0,), "none")

    @classmethod
    def imagenet(cls) -> Normalization:
        """torchvision's ImageNet mean and std per RGB channel, for pretrained backbones (3 channels only)."""
        return cls(IMAGENET_MEAN, IMAGENET_STD, "imagenet")

    @classmethod
    def from_images(cls, images: np.ndarray, *, chunk_size: int = 4096) -> Normalization:
        """Per-channel statistics of a (training) image array; see :func:`compute_channel_stats`."""
        mean, std = compute_channel_stats(images, chunk_size=chunk_size)
        return cls(mean, std, "dataset")

    @property
    def is_uniform(self) -> bool:
        """True when every channel is treated alike (then scalars replace per-channel vectors)."""
        return len(set(self.mean)) == 1 and len(set(self.std)) == 1

    def scale_shift(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``(scale, shift)``, shape ``(channels,)``, so that ``uint8 * scale + shift`` normalises."""
        if len(self.mean) not in (1, channels):
            raise ValueError(
                f"normalization {self.name!r} has {len(self.mean)} channels; the images have {channels}"
            )
        mean = np.broadcast_to(np.asarray(self.mean, np.float64), (channels,))
        std = np.broadcast_to(np.asarray(self.std, np.float64), (channels,))
        return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


def compute_channel_stats(
    images: np.ndarray, *, chunk_size: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale.

    Reads ``chunk_size`` images at a time (so a memory-mapped 224 px train split is never loaded whole) and
    counts a 256-bin histogram per channel: integer counts make the result exact and independent of the
    chunking, the machine and the order of summation.

    Args:
        images: uint8 array ``(N, H, W)`` or ``(N, H, W, C)``; may be a memmap.
        chunk_size: images per chunk.

    Returns:
        ``(mean, std)``, one value per channel (population std, as torchvision-style recipes use).
    """
    if images.dtype != np.uint8:
        raise ValueError(f"channel statistics need uint8 images, got {images.dtype}")
    if len(images) == 0:
        raise ValueError("cannot compute channel statistics of an empty split")
    channels = images.shape[3] if images.ndim == 4 else 1
    counts = np.zeros((channels, 256), np.int64)
    for start in range(0, len(images), chunk_size):
        chunk = np.asarray(images[start : start + chunk_size]).reshape(-1, channels)
        for c in range(channels):
            counts[c] += np.bincount(chunk[:, c], minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    total = counts.sum(axis=1)
    mean = counts @ values / total
    var = counts @ values**2 / total - mean**2
    std = np.sqrt(np.maximum(var, 0.0))
    return tuple(mean.tolist()), tuple(std.tolist())


def normalize(images: np.ndarray, normalization: Normalization) -> np.ndarray:
    """uint8 NHWC images to float32 ``(x / 255 - mean) / std``, in two passes over a fresh array."""
    channels = images.shape[-1]
    scale, shift = normalization.scale_shift(channels)
    out = np.empty(images.shape, np.float32)
    if normalization.is_uniform or channels == 1:
        np.multiply(images, scale[0], out=out)
        out += shift[0]
        return out
    # Broadcasting a (C,) vector over a trailing axis of 3 runs numpy's inner loop 3 elements at a time
    # (about 5x slower); tiling it along a whole image row keeps the inner loop long.
    row = images.shape[-2] * channels
    flat_out = out.reshape(-1, row)
    np.multiply(np.ascontiguousarray(images).reshape(-1, row), np.tile(scale, row // channels), out=flat_out)
    flat_out += np.tile(shift, row // channels)
    return out


# ---- resizing ---------------------------------------------------------------------------------------------


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


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"resize target must be positive, got {size}")
    return int(h), int(w)


def _round_to(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results back to an integer dtype, rounding half up and clipping, as PIL does for uint8."""
    if values.dtype == dtype or np.issubdtype(dtype, np.floating):
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    return np.clip(np.floor(values + 0.5), info.min, info.max).astype(dtype)


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


# ---- augmentation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Training augmentation; the field names match ``medbench.config.AugmentConfig``.

    Applied in this order: random crop after zero padding (``crop_padding`` pixels of the output image),
    horizontal flip, vertical flip (each with probability 0.5), rotation by a uniform angle in
    ``[-rotate_degrees, rotate_degrees]`` about the centre (counter-clockwise for positive angles, as in
    torchvision and PIL), with black fill.
    """

    hflip: bool = False
    vflip: bool = False
    rotate_degrees: float = 0.0
    crop_padding: int = 0
    rotate_mode: ResizeMethod = "nearest"

    def __post_init__(self) -> None:
        if not 0 <= self.rotate_degrees <= 180:
            raise ValueError(f"rotate_degrees must be in [0, 180], got {self.rotate_degrees}")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")
        if self.rotate_mode not in RESIZE_METHODS:
            raise ValueError(f"rotate_mode must be one of {RESIZE_METHODS}, got {self.rotate_mode!r}")

    @property
    def enabled(self) -> bool:
        return self.hflip or self.vflip or self.rotate_degrees > 0 or self.crop_padding > 0

    @classmethod
    def from_config(cls, config: Any) -> Augment:
        """From any object with ``hflip``, ``vflip``, ``rotate_degrees`` and ``crop_padding`` attributes."""
        if isinstance(config, Augment):
            return config
        return cls(
            hflip=bool(config.hflip),
            vflip=bool(config.vflip),
            rotate_degrees=float(config.rotate_degrees),
            crop_padding=int(config.crop_padding),
            rotate_mode=getattr(config, "rotate_mode", "nearest"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hflip": self.hflip,
            "vflip": self.vflip,
            "rotate_degrees": self.rotate_degrees,
            "crop_padding": self.crop_padding,
            "rotate_mode": self.rotate_mode,
        }


@dataclass(frozen=True)
class AugmentParams:
    """The random draws for one batch: per image, a crop shift, two flip flags and an angle in degrees."""

    shift_y: np.ndarray
    shift_x: np.ndarray
    hflip: np.ndarray
    vflip: np.ndarray
    angles: np.ndarray
    rotate_mode: ResizeMethod = "nearest"

    @classmethod
    def identity(cls, n: int) -> AugmentParams:
        zeros = np.zeros(n, np.intp)
        flags = np.zeros(n, bool)
        return cls(zeros, zeros, flags, flags, np.zeros(n, np.float64))

    @property
    def rotates(self) -> bool:
        return bool(np.any(self.angles != 0))


def draw_augment_params(augment: Augment, n: int, key: Sequence[int]) -> AugmentParams:
    """Draws the parameters for ``n`` images from generators seeded by ``key`` (plus one tag per op).

    The pipeline passes ``key = (seed, epoch, stream, batch_index)``, so the draws depend on nothing but
    those numbers: any process, thread or framework gets the same augmentation.
    """

    def rng(tag: int) -> np.random.Generator:
        return np.random.default_rng([*map(int, key), tag])

    p = augment.crop_padding
    zeros = np.zeros(n, np.intp)
    shifts = rng(_CROP).integers(-p, p + 1, size=(2, n)).astype(np.intp) if p else (zeros, zeros)
    no_flip = np.zeros(n, bool)
    hflip = rng(_HFLIP).random(n) < FLIP_PROBABILITY if augment.hflip else no_flip
    vflip = rng(_VFLIP).random(n) < FLIP_PROBABILITY if augment.vflip else no_flip
    d = augment.rotate_degrees
    angles = rng(_ROTATE).uniform(-d, d, n) if d else np.zeros(n, np.float64)
    return AugmentParams(shifts[0], shifts[1], hflip, vflip, angles, augment.rotate_mode)


# ---- geometry: resize, crop, flips and rotation as index gathers ------------------------------------------


@dataclass(frozen=True)
class _AxisPlan:
    """Per image, where each output row (or column) reads from along one axis of the source."""

    i0: np.ndarray  # (N, out) source index
    fill: np.ndarray  # (N, out) True where a padded crop shows the fill colour
    i1: np.ndarray | None = None  # bilinear only: the second tap ...
    w1: np.ndarray | None = None  # ... and its float32 weight

    @property
    def bilinear(self) -> bool:
        return self.i1 is not None

    def shared(self) -> bool:
        """The same plan for every image (no augmentation on this axis): one gather serves the batch."""
        same = (self.i0 == self.i0[0]).all() and (self.w1 is None or (self.w1 == self.w1[0]).all())
        return bool(same and not self.fill.any())

    def identity(self, n_in: int) -> np.ndarray:
        """Per image: does this axis leave the source as it is?"""
        if self.i0.shape[1] != n_in or self.bilinear:
            return np.zeros(len(self.i0), bool)
        return (self.i0 == np.arange(n_in)).all(axis=1) & ~self.fill.any(axis=1)


def _axis_plan(n_in: int, n_out: int, shifts: np.ndarray, flips: np.ndarray, method: str) -> _AxisPlan:
    """Composes resizing ``n_in -> n_out``, a crop shift and a flip along one axis into source indices."""
    pos = np.arange(n_out, dtype=np.intp)[None, :] + shifts[:, None]  # position in the resized image
    fill = (pos < 0) | (pos >= n_out)
    pos = np.clip(pos, 0, n_out - 1)
    pos = np.where(flips[:, None], pos[:, ::-1], pos)
    fill = np.where(flips[:, None], fill[:, ::-1], fill)
    if n_in == n_out:
        return _AxisPlan(pos, fill)
    if method == "nearest":
        return _AxisPlan(nearest_indices(n_in, n_out)[pos], fill)
    i0, i1, w1 = bilinear_taps(n_in, n_out)
    return _AxisPlan(i0[pos], fill, i1[pos], w1[pos])


def _resample_axis(
    x: np.ndarray, plan: _AxisPlan, k: int, axis: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Gathers (nearest) or blends two gathers (bilinear) along ``axis`` with image ``k``'s plan."""
    if not plan.bilinear:
        return np.take(x, plan.i0[k], axis=axis, mode="clip", out=out)
    first = np.take(x, plan.i0[k], axis=axis)
    out = np.take(x, plan.i1[k], axis=axis, mode="clip", out=out)
    shape = [1] * x.ndim
    shape[axis] = -1
    out -= first
    out *= plan.w1[k].reshape(shape)
    out += first
    return out


_SMALL_IMAGE = 64 * 64 * 3  # values per image below which one batched gather beats a loop over images


def _gather_flat(src: np.ndarray, rows: _AxisPlan, cols: _AxisPlan, fill: np.ndarray) -> np.ndarray:
    """Every image's own plan in one gather: for small images, where a Python loop would cost the most."""
    n, h_in, w_in, c = src.shape
    start = (np.arange(n, dtype=np.intp) * h_in)[:, None, None]
    pixel = (start + rows.i0[:, :, None]) * w_in + cols.i0[:, None, :]
    out = np.take(src.reshape(-1, c), pixel, axis=0)
    out[rows.fill[:, :, None] | cols.fill[:, None, :]] = fill
    return out


def _apply_separable(src: np.ndarray, rows: _AxisPlan, cols: _AxisPlan, fill: np.ndarray) -> np.ndarray:
    """Applies per-image row and column plans: in one or two gathers for small images, else image by image."""
    n, c = src.shape[0], src.shape[3]
    shape = (n, rows.i0.shape[1], cols.i0.shape[1], c)
    small = shape[1] * shape[2] * c <= _SMALL_IMAGE
    if small and not (rows.bilinear or cols.bilinear or rows.shared() and cols.shared()):
        return _gather_flat(src, rows, cols, fill)
    # Columns first: upsampling from 28 px, the second gather then copies whole rows, ~10x faster than the
    # other order (whose inner loop would copy one 3-byte pixel at a time). mode="clip" lets take write
    # straight into `out`; the indices are always in range.
    out = np.empty(shape, src.dtype)
    if small and rows.shared() and cols.shared():
        return _resample_axis(_resample_axis(src, cols, 0, axis=2), rows, 0, axis=1, out=out)
    # Large images go one at a time, so that each stays in cache between its two gathers.
    keep_cols = cols.identity(src.shape[2])
    for k in range(n):
        img = src[k] if keep_cols[k] else _resample_axis(src[k], cols, k, axis=1)
        _resample_axis(img, rows, k, axis=0, out=out[k])
        out[k, rows.fill[k]] = fill
        out[k, :, cols.fill[k]] = fill
    return out


def _offset_lut(plan: _AxisPlan, pad: int, scale: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat lookup tables ``(this, next)`` from a (padded) output position to a term of the source offset.

    Entries outside the image or in a crop's fill band hold a large negative number, so any sum containing
    one stays negative and marks a fill pixel. ``next`` is shifted by one, for bilinear's second tap.
    """
    n, n_out = plan.i0.shape
    lut = np.full((n, n_out + 2 * pad + 1), _OUTSIDE, np.int64)
    lut[:, pad : pad + n_out] = np.where(plan.fill, _OUTSIDE, plan.i0 * scale + offsets[:, None])
    return lut[:, :-1].ravel(), lut[:, 1:].ravel()


_OUTSIDE = -(2**40)  # far below any real offset (a batch holds far fewer than 2**40 pixels)


def _apply_rotation(
    src: np.ndarray, rows: _AxisPlan, cols: _AxisPlan, angles: np.ndarray, mode: str, fill: np.ndarray
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
    rows = _axis_plan(h_in, h, params.shift_y, params.vflip, resize_method)
    cols = _axis_plan(w_in, w, params.shift_x, params.hflip, resize_method)
    blends = rows.bilinear or cols.bilinear or (params.rotates and params.rotate_mode == "bilinear")
    work = images.astype(np.float32) if blends and not np.issubdtype(images.dtype, np.floating) else images
    fill_values = np.broadcast_to(np.asarray(fill, dtype=work.dtype), (c,))
    if not params.rotates:
        return _round_to(_apply_separable(work, rows, cols, fill_values), images.dtype)
    if rows.bilinear or cols.bilinear:  # materialise the bilinear resize, then rotate that
        work = _apply_separable(work, rows, cols, fill_values)
        rows, cols = (_axis_plan(s, s, np.zeros(n, np.intp), np.zeros(n, bool), "nearest") for s in (h, w))
    out = _apply_rotation(work, rows, cols, params.angles, params.rotate_mode, fill_values)
    return _round_to(out, images.dtype)


def augment_batch(
    images: np.ndarray, augment: Augment, key: Sequence[int], *, fill: float | Sequence[float] = 0
) -> np.ndarray:
    """Draws parameters from ``key`` and applies them: the pipeline's augmentation, on its own."""
    return geometric_transform(images, params=draw_augment_params(augment, len(images), key), fill=fill)
