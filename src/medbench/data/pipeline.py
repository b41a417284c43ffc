"""The one source of batches for every framework: seeded, numpy-only, prefetched in background threads.

Batch ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)`` and the pipeline's settings: the sample
order comes from ``np.random.default_rng([seed, e, 1])`` (``[seed, e, 3]`` for the class-balanced sampler)
and each augmentation draw from ``default_rng([seed, e, 2, i, op])``. PyTorch, JAX and Keras runs, in any
process or thread, therefore see bit-identical batches in the same order, and frameworks only convert them
(NHWC float32 images; int64 class indices, or float32 multi-hot rows for multi-label tasks).

The reproducibility rests on numpy's PCG64 and ``Generator.permutation``/``integers``/``uniform``, which numpy
does not promise to keep across versions; ``tests/data/test_pipeline.py`` pins a few draws so a change shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from medbench.data.balanced_sampler import Sampler, balanced_sampler
from medbench.data.loading import MedMNISTData, Split
from medbench.data.pipeline_settings import (
    as_augment,
    as_normalization,
    check_channels,
    check_key,
    check_settings,
    convert_labels,
)
from medbench.data.prefetch import prefetched
from medbench.data.transforms import (
    Augment,
    Normalization,
    ResizeMethod,
    draw_augment_params,
    geometric_transform,
    normalize,
)
from medbench.errors import ConfigError

Batch = tuple[np.ndarray, np.ndarray]

_SHUFFLE_STREAM, _AUGMENT_STREAM, _BALANCED_STREAM = 1, 2, 3  # non-zero: SeedSequence pads with zeros


class BatchPipeline:
    """Batches ``(images, labels)`` of one split, in numpy.

    Images come out float32 NHWC, normalised; grey images keep one channel unless ``to_rgb``. Labels come
    out int64 ``(N,)`` for single-label tasks and float32 ``(N, L)`` for multi-label ones.

    Args:
        split: the split to read (its name decides whether augmentation is allowed: train only).
        batch_size: images per batch.
        shuffle: a new seeded order each epoch; else file order.
        sampler: how a shuffled epoch is drawn: "shuffle" (every image once) or "balanced" (as many draws as
            images, with replacement, every class equally likely; see
            :class:`~medbench.data.balanced_sampler.BalancedSampler`). Balanced
            needs ``shuffle`` on the train split of a single-label task.
        seed: 0 <= seed < 2**32; with the epoch it fixes the order and the augmentation.
        drop_last: drop the final short batch.
        normalize: "official" (mean = std = 0.5), "imagenet" (torchvision's RGB statistics: needs 3 channels,
            so ``to_rgb`` for grey images), "none" ([0, 1]) or a :class:`Normalization` (e.g. train
            statistics from :meth:`Normalization.from_images`).
        resize_to: output side for upsampled protocols (e.g. 224), or None.
        resize_method: "nearest" (MedMNIST's 28 -> 224 rows) or "bilinear".
        to_rgb: repeat a grey channel to three (for models built for RGB input).
        augment: an :class:`Augment` (or anything with its field names, like ``AugmentConfig``), or None.
        multi_label: label format; None infers it from the label width (more than one column).
        prefetch: batches prepared ahead in background threads; 0 builds each batch on demand.
        workers: threads preparing batches (1 is enough at 28 px; more help at 224 px on many cores).
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        sampler: Sampler = "shuffle",
        seed: int = 0,
        drop_last: bool = False,
        normalize: str | Normalization = "official",
        resize_to: int | None = None,
        resize_method: ResizeMethod = "nearest",
        to_rgb: bool = False,
        augment: Augment | Any | None = None,
        multi_label: bool | None = None,
        prefetch: int = 2,
        workers: int = 1,
    ):
        check_settings(
            batch_size=batch_size,
            seed=seed,
            prefetch=prefetch,
            workers=workers,
            resize_to=resize_to,
            resize_method=resize_method,
        )
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.resize_to = resize_to
        self.resize_method = resize_method
        self.to_rgb = to_rgb
        self.prefetch = prefetch
        self.workers = workers
        self.augment = as_augment(augment, split.name)
        self.normalization = as_normalization(normalize)
        self.channels = 3 if to_rgb else split.n_channels
        check_channels(self.normalization, self.channels)
        # A black pixel after normalisation: what padded crops and rotations show outside the image.
        self._fill = self.normalization.scale_shift(self.channels)[1]
        self._images = split.images
        self._labels = convert_labels(split.labels, multi_label)
        self.sampler = sampler
        self._balanced = balanced_sampler(sampler, self._labels, split.name, shuffle=shuffle)

    # ---- sizes -----------------------------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        return len(self.split)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        full, rest = divmod(self.n_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image in a batch."""
        side = self.resize_to or self.split.images.shape[1]
        return (side, side, self.channels)

    @property
    def multi_label(self) -> bool:
        return self._labels.ndim == 2

    # ---- batches ---------------------------------------------------------------------------------------

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch`` in the order they are served (before dropping a short last batch).

        A permutation of the split, except with the balanced sampler, whose indices may repeat.
        """
        check_key("epoch", epoch)
        if not self.shuffle:
            return np.arange(self.n_samples)
        if self._balanced is not None:
            return self._balanced.draw(np.random.default_rng([self.seed, epoch, _BALANCED_STREAM]))
        return np.random.default_rng([self.seed, epoch, _SHUFFLE_STREAM]).permutation(self.n_samples)

    def batch(self, epoch: int, index: int) -> Batch:
        """Batch ``index`` of ``epoch``, built from scratch (any process gets the same one)."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range: the epoch has {len(self)} batches")
        return self._build(self.order(epoch), epoch, index)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch, prepared ``prefetch`` ahead by background threads.

        Stopping early is safe: closing the iterator (``break`` and dropping it, or ``.close()``) cancels the
        queued work and joins the threads.
        """
        order = self.order(epoch)

        def build(index: int) -> Batch:
            return self._build(order, epoch, index)

        if self.prefetch == 0:
            return (build(i) for i in range(len(self)))
        return prefetched(build, len(self), depth=self.prefetch, workers=self.workers)

    def __iter__(self) -> Iterator[Batch]:
        """Epoch 0: enough for evaluation; training should call :meth:`epoch` with the epoch number."""
        return self.epoch(0)

    def describe(self) -> dict[str, Any]:
        """The settings that decide the batches, for the results store."""
        return {
            "split": self.split.name,
            "n_samples": self.n_samples,
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "sampler": self.sampler,
            "seed": self.seed,
            "drop_last": self.drop_last,
            "normalize": self.normalization.to_dict(),
            "resize_to": self.resize_to,
            "resize_method": self.resize_method,
            "to_rgb": self.to_rgb,
            "augment": self.augment.to_dict() if self.augment else None,
            "image_shape": list(self.image_shape),
        }

    def _build(self, order: np.ndarray, epoch: int, index: int) -> Batch:
        start = index * self.batch_size
        idx = order[start : start + self.batch_size]
        pixels = _gather(self._images, idx, contiguous=not self.shuffle)
        if pixels.ndim == 3:
            pixels = pixels[..., None]
        if self.to_rgb and pixels.shape[3] == 1:
            pixels = np.repeat(pixels, 3, axis=3)  # at the stored size, before any upsampling: cheap
        images = normalize(pixels, self.normalization)
        params = None
        if self.augment is not None:
            key = (self.seed, epoch, _AUGMENT_STREAM, index)
            params = draw_augment_params(self.augment, len(idx), key)
        if params is not None or self.resize_to is not None:
            images = geometric_transform(
                images, size=self.resize_to, resize_method=self.resize_method, params=params, fill=self._fill
            )
        return images, np.take(self._labels, idx, axis=0)


def make_pipeline(
    data: MedMNISTData,
    split: str = "train",
    *,
    batch_size: int = 128,
    shuffle: bool | None = None,
    sampler: Sampler = "shuffle",
    seed: int = 0,
    drop_last: bool = False,
    normalize: str | Normalization = "official",
    resize_to: int | None = None,
    resize_method: ResizeMethod = "nearest",
    to_rgb: bool = False,
    augment: Augment | Any | None = None,
    prefetch: int = 2,
    workers: int = 1,
) -> BatchPipeline:
    """A pipeline over ``data[split]``, with the label format from the dataset's task.

    ``shuffle`` defaults to True for train and False otherwise; ``sampler="balanced"`` (train only) draws
    every class equally often instead of every image once. ``normalize="dataset"`` uses per-channel
    statistics of the train split; to share them between the three splits, compute them once with
    ``Normalization.from_images(data["train"].images)`` and pass that instead.
    """
    if normalize == "dataset":
        if len(data["train"]) == 0:
            raise ConfigError(
                f"normalize='dataset' needs train images, but the train split of {data.info.flag} is empty.",
                "Use normalize='official', or a file with a train split.",
            )
        normalize = Normalization.from_images(data["train"].images)
    return BatchPipeline(
        data[split],
        batch_size=batch_size,
        shuffle=split == "train" if shuffle is None else shuffle,
        sampler=sampler,
        seed=seed,
        drop_last=drop_last,
        normalize=normalize,
        resize_to=resize_to,
        resize_method=resize_method,
        to_rgb=to_rgb,
        augment=augment,
        multi_label=data.multi_label,
        prefetch=prefetch,
        workers=workers,
    )


def _gather(images: np.ndarray, idx: np.ndarray, *, contiguous: bool) -> np.ndarray:
    """``images[idx]`` as a new in-memory array; reads a memory-mapped file in ascending order."""
    if contiguous and len(idx):
        return np.array(images[idx[0] : idx[-1] + 1])
    if isinstance(images, np.memmap) and len(idx) > 1:
        # Sorting turns random page faults into one forward sweep over the file; then restore the order.
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *images.shape[1:]), images.dtype)
        out[order] = images[idx[order]]
        return out
    return np.take(images, idx, axis=0)
