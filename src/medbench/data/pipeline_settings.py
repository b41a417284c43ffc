"""A pipeline's arguments checked and turned into what it runs with, each bad one refused with the fix."""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.data.transforms import RESIZE_METHODS, Augment, Normalization
from medbench.errors import ConfigError

_MAX_SEED = 2**32  # one 32-bit word per key entry keeps (seed, epoch, ...) keys from colliding


def check_settings(
    *, batch_size: int, seed: int, prefetch: int, workers: int, resize_to: int | None, resize_method: str
) -> None:
    """Refuses a batch size, seed, prefetch depth, worker count or resize setting the pipeline cannot use."""
    check_key("seed", seed)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}.", "Use e.g. 128.")
    if prefetch < 0:
        raise ConfigError(
            f"prefetch must be >= 0, got {prefetch}.", "Use 0 (no background thread) or e.g. 2."
        )
    if workers < 1:
        raise ConfigError(
            f"workers must be at least 1, got {workers}.", "Use 1, or more on many-core machines."
        )
    if resize_method not in RESIZE_METHODS:
        raise ConfigError(
            f"Unknown resize method {resize_method!r}.", f"Use one of {', '.join(RESIZE_METHODS)}."
        )
    if resize_to is not None and resize_to < 1:
        raise ConfigError(f"resize_to must be a positive side length, got {resize_to}.", "Use e.g. 224.")


def check_key(name: str, value: int) -> None:
    """A seed or an epoch must fit one 32-bit word of a random key."""
    if not isinstance(value, (int, np.integer)) or not 0 <= value < _MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, 2**32), got {value!r}.", f"Pass a valid {name}.")


def convert_labels(labels: np.ndarray, multi_label: bool | None) -> np.ndarray:
    """``(N, 1)`` labels to int64 class indices ``(N,)``; multi-label ``(N, L)`` ones to float32 rows."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (N, 1) or (N, L), got shape {labels.shape}")
    if multi_label is None:
        multi_label = labels.shape[1] > 1
    if multi_label:
        return labels.astype(np.float32)
    if labels.shape[1] != 1:
        raise ValueError(f"single-label data needs labels of shape (N, 1), got {labels.shape}")
    return labels[:, 0].astype(np.int64)


def as_normalization(value: str | Normalization) -> Normalization:
    """A :class:`Normalization`, or the name of a fixed one ("official", "imagenet", "none")."""
    if isinstance(value, Normalization):
        return value
    if value == "official":
        return Normalization.official()
    if value == "imagenet":
        return Normalization.imagenet()
    if value == "none":
        return Normalization.none()
    raise ConfigError(
        f"Unknown normalization {value!r}.",
        "Use 'official', 'imagenet', 'none', or a Normalization (make_pipeline also takes 'dataset').",
    )


def check_channels(normalization: Normalization, channels: int) -> None:
    """One mean/std for all channels, or one per channel of the images as they are normalised."""
    given = len(normalization.mean)
    if given in (1, channels):
        return
    if channels == 1 and given == 3:
        # Grey datasets meet RGB statistics with ImageNet-pretrained backbones: to_rgb is the way out, and
        # it works because the pipeline repeats the channel before it normalises.
        raise ConfigError(
            f"Normalization {normalization.name!r} has 3 channels (RGB), but the images are grey "
            "(1 channel).",
            "Set data.to_rgb=true (to_rgb=True in the pipeline) to repeat the grey channel to three before "
            "normalising, or use normalize='official'.",
        )
    raise ConfigError(
        f"Normalization {normalization.name!r} has {given} channels; the images have {channels}.",
        "Give one mean/std per channel (or one for all channels), or set to_rgb to match.",
    )


def as_augment(value: Augment | Any | None, split_name: str) -> Augment | None:
    """The augmentation to apply, None when nothing is enabled; only the train split may be augmented."""
    augment = None if value is None else Augment.from_config(value)
    if augment is None or not augment.enabled:
        return None
    if split_name != "train":
        raise ConfigError(
            f"Augmentation was asked for on the {split_name!r} split.",
            "Augment the train split only; evaluate val and test on unaugmented images.",
        )
    return augment
