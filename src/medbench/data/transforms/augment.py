"""Seeded training augmentation: what to apply (:class:`Augment`) and each batch's random draws.

The draws depend on nothing but their key, so any process, thread or framework gets the same augmentation;
applying them is :func:`medbench.data.transforms.geometric_transform`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.data.transforms.resampling import RESIZE_METHODS, ResizeMethod

# Seed-stream tags, one per augmentation: each op draws from its own generator, so enabling one op never
# changes the random values another op sees. Non-zero, because numpy's SeedSequence pads entropy with zeros.
_CROP, _HFLIP, _VFLIP, _ROTATE = 1, 2, 3, 4
FLIP_PROBABILITY = 0.5


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
