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

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from medbench.data.loading import MedMNISTData, Split
from medbench.data.transforms import (
    RESIZE_METHODS,
    Augment,
    Normalization,
    ResizeMethod,
    draw_augment_params,
    geometric_transform,
    normalize,
)
from medbench.errors import ConfigError

Batch = tuple[np.ndarray, np.ndarray]
T = TypeVar("T")

_SHUFFLE_STREAM, _AUGMENT_STREAM, _BALANCED_STREAM = 1, 2, 3  # non-zero: SeedSequence pads with zeros
_MAX_SEED = 2**32  # one 32-bit word per key entry keeps (seed, epoch, ...) keys from colliding
THREAD_PREFIX = "medbench-batch"
Sampler = Literal["shuffle", "balanced"]
SAMPLERS: tuple[str, ...] = ("shuffle", "balanced")


class BatchPipeline:
    """Batches ``(images, labels)`` of one split, in numpy.

    Images come out float32 NHWC, normalised; grey images keep one channel unless ``to_rgb``. Labels come
    out int64 ``(N,)`` for single-label tasks and float32 ``(N, L)`` for multi-label ones.

    Args:
        split: the split to read (its name decides whether augmentation is allowed: train only).
        batch_size: images per batch.
        shuffle: a new seeded order each epoch; else file order.
        sampler: how a shuffled epoch is drawn: "shuffle" (every image once) or "balanced" (as many draws as
            images, with replacement, every class equally likely; see :class:`BalancedSampler`). Balanced
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
        _check_settings(batch_size=batch_size, seed=seed, prefetch=prefetch, workers=workers)
        if resize_method not in RESIZE_METHODS:
            raise ConfigError(
                f"Unknown resize method {resize_method!r}.", f"Use one of {', '.join(RESIZE_METHODS)}."
            )
        if resize_to is not None and resize_to < 1:
            raise ConfigError(f"resize_to must be a positive side length, got {resize_to}.", "Use e.g. 224.")
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
        self.augment = _as_augment(augment, split.name)
        self.normalization = _as_normalization(normalize)
        self.channels = 3 if to_rgb else split.n_channels
        _check_channels(self.normalization, self.channels)
        # A black pixel after normalisation: what padded crops and rotations show outside the image.
        self._fill = self.normalization.scale_shift(self.channels)[1]
        self._images = split.images
        self._labels = _convert_labels(split.labels, multi_label)
        self.sampler = sampler
        self._balanced = _balanced_sampler(sampler, self._labels, split.name, shuffle=shuffle)

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
        _check_key("epoch", epoch)
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


@dataclass(frozen=True, eq=False)
class BalancedSampler:
    """Class-balanced draws with replacement: ``WeightedRandomSampler`` with weight ``1 / count(class)``.

    Each of the ``n`` draws of an epoch picks a class uniformly among the classes present, then one of that
    class's images uniformly. That is exactly the distribution of torch's sampler with every image weighted
    by the inverse of its class count (``P(image i) = 1 / (K * count(class of i))``), drawn with integers
    only, so no floating-point cumulative sum decides which image comes out. Each class then fills about
    ``1 / K`` of an epoch: images of rare classes repeat, some of the common ones wait for a later epoch.
    """

    members: np.ndarray  # image indices grouped by class, in file order within a class
    starts: np.ndarray  # where each present class begins in `members`
    counts: np.ndarray  # images per present class

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> BalancedSampler:
        """From int class indices ``(N,)``; classes absent from ``labels`` are never drawn."""
        members = np.argsort(labels, kind="stable")
        _, starts, counts = np.unique(labels[members], return_index=True, return_counts=True)
        return cls(members, starts, counts)

    @property
    def n_samples(self) -> int:
        return len(self.members)

    def probabilities(self) -> np.ndarray:
        """Per image, the chance that one draw picks it (the normalised 1 / class-count weights)."""
        p = np.empty(self.n_samples, np.float64)
        for start, count in zip(self.starts, self.counts, strict=True):
            p[self.members[start : start + count]] = 1.0 / (len(self.counts) * count)
        return p

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """``n_samples`` image indices (with repeats) for one epoch."""
        if self.n_samples == 0:
            return np.zeros(0, np.intp)
        classes = rng.integers(0, len(self.counts), self.n_samples)
        within = rng.integers(0, self.counts[classes])
        return self.members[self.starts[classes] + within]


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


def prefetched(make: Callable[[int], T], n: int, *, depth: int = 2, workers: int = 1) -> Iterator[T]:
    """Yields ``make(0) ... make(n - 1)`` in order, computing up to ``depth`` of them ahead in threads.

    Threads are enough: numpy releases the GIL in its copies, gathers and arithmetic, which is where batch
    building spends its time, so they overlap with the consumer (whose framework also releases the GIL).
    ``depth`` bounds the memory held in finished batches. When the consumer stops early, the generator's
    ``finally`` cancels what has not started and waits for at most ``workers`` batches in progress, so no
    thread outlives the iteration. An exception in ``make`` is raised in the consumer.
    """
    if n <= 0:
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX) as pool:
        pending: deque[Future[T]] = deque()
        submitted = 0
        try:
            while submitted < min(depth, n):
                pending.append(pool.submit(make, submitted))
                submitted += 1
            while pending:
                item = pending.popleft().result()
                if submitted < n:
                    pending.append(pool.submit(make, submitted))
                    submitted += 1
                yield item
        finally:
            for future in pending:
                future.cancel()
            # leaving the `with` joins the threads (shutdown(wait=True))


# ---- helpers ----------------------------------------------------------------------------------------------


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


def _convert_labels(labels: np.ndarray, multi_label: bool | None) -> np.ndarray:
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


def _as_normalization(value: str | Normalization) -> Normalization:
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


def _check_channels(normalization: Normalization, channels: int) -> None:
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


def _balanced_sampler(
    sampler: str, labels: np.ndarray, split_name: str, *, shuffle: bool
) -> BalancedSampler | None:
    if sampler not in SAMPLERS:
        raise ConfigError(f"Unknown sampler {sampler!r}.", f"Use one of {', '.join(SAMPLERS)}.")
    if sampler == "shuffle":
        return None
    if split_name != "train" or not shuffle:
        raise ConfigError(
            f"Balanced sampling was asked for on the {'shuffled ' if shuffle else 'unshuffled '}"
            f"{split_name!r} split.",
            "Resample the shuffled train split only; evaluation reads every image once (sampler='shuffle').",
        )
    if labels.ndim == 2:
        # With several positives per image no per-image weight makes every label equally frequent, and
        # "weight by the rarest positive" leaves images without findings with no class: not defined.
        raise ConfigError(
            "recipe.sampler='balanced' is not defined for multi-label tasks (an image has several labels).",
            "Use recipe.sampler='shuffle' for this dataset.",
        )
    return BalancedSampler.from_labels(labels)


def _as_augment(value: Augment | Any | None, split_name: str) -> Augment | None:
    augment = None if value is None else Augment.from_config(value)
    if augment is None or not augment.enabled:
        return None
    if split_name != "train":
        raise ConfigError(
            f"Augmentation was asked for on the {split_name!r} split.",
            "Augment the train split only; evaluate val and test on unaugmented images.",
        )
    return augment


def _check_key(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or not 0 <= value < _MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, 2**32), got {value!r}.", f"Pass a valid {name}.")


def _check_settings(*, batch_size: int, seed: int, prefetch: int, workers: int) -> None:
    _check_key("seed", seed)
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
