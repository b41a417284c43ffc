"""Class-balanced sampling with replacement, the pipeline's ``sampler="balanced"``, drawn with integers only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from medbench.errors import ConfigError

Sampler = Literal["shuffle", "balanced"]
SAMPLERS: tuple[str, ...] = ("shuffle", "balanced")


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


def balanced_sampler(
    sampler: str, labels: np.ndarray, split_name: str, *, shuffle: bool
) -> BalancedSampler | None:
    """The sampler a pipeline draws its epochs with: None for "shuffle", refusing what balance cannot mean."""
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
