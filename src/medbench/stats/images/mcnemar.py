"""McNemar's exact test of two models' ACC on the same images (single-label tasks): only the images one
model gets right and the other wrong count (``statsmodels.stats.contingency_tables.mcnemar(exact=True)``)."""

from __future__ import annotations

import numpy as np

from medbench.stats.images.result import ImageTest


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> ImageTest:
    """McNemar's exact test on per-image correctness (booleans, same images in the same order)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    table = [[int(np.sum(a & b)), only_a], [only_b, int(np.sum(~a & ~b))]]
    # With no discordant image there is nothing to test: the two models agree on every image's correctness.
    p = 1.0 if only_a + only_b == 0 else float(mcnemar(table, exact=True).pvalue)
    return ImageTest(
        method="McNemar exact",
        difference=(only_a - only_b) / a.size,
        p_value=p,
        statistic=float(min(only_a, only_b)),
        n_images=int(a.size),
        note=f"{only_a} images right only for the first, {only_b} only for the second",
    )
