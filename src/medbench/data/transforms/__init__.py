"""Numpy image transforms for the batch pipeline: normalisation, resizing and seeded augmentation.

Everything works on NHWC batches ``(N, H, W, C)`` and returns new arrays; no deep-learning framework is used,
so every framework is fed bit-identical values.

The pipeline normalises at the stored resolution first (at 28 px that is 64 times fewer pixels than at 224)
and then does every geometric step as index gathers on float32 values, with the fill colour set to the
normalised value of a black pixel. Nearest resizing, flips, padded crops and nearest rotations only move
values, so this gives exactly the batch that normalising last would give, at a fraction of the cost.
Nearest resizing, flips and crops are composed into one row map and one column map per image, so an
augmented 28 -> 224 batch is gathered once from the small source.

Modules: :mod:`~medbench.data.transforms.normalization`, :mod:`~medbench.data.transforms.augment` (what to
apply and its seeded draws), :mod:`~medbench.data.transforms.geometry` (the one geometric step), built on
:mod:`~medbench.data.transforms.resampling`, :mod:`~medbench.data.transforms.separable` (row and column
maps) and :mod:`~medbench.data.transforms.rotation`.
"""

from medbench.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from medbench.data.transforms.augment import FLIP_PROBABILITY, Augment, AugmentParams, draw_augment_params
from medbench.data.transforms.geometry import augment_batch, geometric_transform, resize
from medbench.data.transforms.normalization import Normalization, compute_channel_stats, normalize
from medbench.data.transforms.resampling import (
    RESIZE_METHODS,
    ResizeMethod,
    bilinear_taps,
    nearest_indices,
)

__all__ = [
    "FLIP_PROBABILITY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESIZE_METHODS",
    "Augment",
    "AugmentParams",
    "Normalization",
    "ResizeMethod",
    "augment_batch",
    "bilinear_taps",
    "compute_channel_stats",
    "draw_augment_params",
    "geometric_transform",
    "nearest_indices",
    "normalize",
    "resize",
]
