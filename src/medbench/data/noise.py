"""Dropout and stochastic-depth masks for every training step, drawn in numpy beside the batches.

The masks of step ``i`` of epoch ``e`` are a pure function of ``(seed, e, i)`` and the model's noise sites
(:func:`medbench.frameworks.noise.noise_sites`), exactly as batch ``i`` of epoch ``e`` is
(:mod:`medbench.data.pipeline`): site ``k`` draws from ``default_rng([seed, e, 4, i, k])``, stream 4 beside
the pipeline's shuffle (1), augmentation (2) and balanced-sampler (3) streams. Nothing is carried from one
step to the next, so a resumed run draws the same masks as an uninterrupted one, and PyTorch, JAX and Keras
runs of one seed drop the same units of the same images at every step.

Semantics (inverted dropout, see :mod:`medbench.frameworks.noise`): each element is kept with probability
``1 - p`` and then worth ``1 / (1 - p)``, else ``0``; the layer computes ``x * mask``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medbench.frameworks.noise import NoiseSite

_NOISE_STREAM = 4


def site_mask(site: NoiseSite, rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """One site's float32 mask of shape ``(batch_size, *site.shape)``: 0 or ``1 / (1 - p)``."""
    keep = np.float32(1.0 - site.p)
    kept = rng.random((batch_size, *site.shape), dtype=np.float32) < keep
    return kept.astype(np.float32) / keep  # as torch: a 0/1 float mask divided by the keep probability


class NoiseStream:
    """The masks of every step of one run: ``masks(epoch, index, batch_size)`` -> site name -> array."""

    def __init__(self, sites: Sequence[NoiseSite], seed: int):
        self.sites = tuple(sites)
        self.seed = int(seed)

    def masks(self, epoch: int, index: int, batch_size: int) -> dict[str, np.ndarray]:
        return {
            site.name: site_mask(
                site, np.random.default_rng([self.seed, epoch, _NOISE_STREAM, index, k]), batch_size
            )
            for k, site in enumerate(self.sites)
        }

    def describe(self) -> dict[str, float]:
        """Site name -> drop probability, as stored with the run."""
        return {site.name: site.p for site in self.sites}

    def __bool__(self) -> bool:
        return bool(self.sites)
