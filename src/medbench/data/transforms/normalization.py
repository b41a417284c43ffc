"""Normalisation: per-channel ``(x / 255 - mean) / std`` of uint8 images, and the statistics it needs.

The pipeline normalises at the stored resolution, before any upsampling: 64 times fewer pixels at 28 px
than at 224, and every geometric step after it only moves values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.data.imagenet import IMAGENET_MEAN, IMAGENET_STD


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
