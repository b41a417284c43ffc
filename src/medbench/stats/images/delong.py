"""DeLong's test (DeLong, DeLong & Clarke-Pearson 1988) of two models' official AUCs on the same images.

Written here because no library in the stack has it, and the official AUC of a multi-class task is the *mean
of one-vs-rest AUCs*, which the textbook two-class test does not cover. Each AUC is a Mann-Whitney statistic,
asymptotically linear in per-image terms (DeLong's structural components ``V10``/``V01``, from midranks as in
Sun & Xu 2014). The difference of the two models' mean AUCs is then a sum of one term per image, and its
variance is estimated from those terms within each true class (the class counts held fixed, as DeLong holds
the positives and negatives fixed). With one column (binary tasks) this is exactly DeLong's test. Multi-label
tasks have no partition of the images into classes: the terms are then treated as i.i.d. over images
(unconditional variance). A paired bootstrap would give the same answer on MedMNIST's test sets (checked in
the tests) but costs hundreds of resamples of every column; DeLong is exact in its assumptions and instant.
"""

from __future__ import annotations

import math

import numpy as np

from medbench.data.registry import Task
from medbench.stats.images.outputs import auc_columns, labels_of
from medbench.stats.images.result import ImageTest


def _influence(target: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """(AUC, per-image term): AUC - theta ~ sum of the terms, DeLong's structural components centred.

    ``V10`` of a positive is the share of negatives it outscores (ties half), ``V01`` of a negative the share
    of positives that outscore it; from midranks (Sun & Xu 2014): ``V10 = (R_all - R_pos) / n``.
    """
    from scipy.stats import rankdata

    pos, neg = target == 1, target == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        raise ValueError("AUC is undefined for a column with no positive or no negative image")
    ranks = rankdata(score)
    v10 = (ranks[pos] - rankdata(score[pos])) / n
    v01 = 1.0 - (ranks[neg] - rankdata(score[neg])) / m
    auc = float(v10.mean())
    term = np.empty(score.shape[0])
    term[pos] = (v10 - auc) / m
    term[neg] = (v01 - auc) / n
    return auc, term


def _mean_auc_terms(labels, scores, task) -> tuple[float, np.ndarray]:
    columns = auc_columns(labels, scores, task)
    parts = [_influence(t, s) for t, s in columns]
    return float(np.mean([auc for auc, _ in parts])), np.mean([term for _, term in parts], axis=0)


def _strata(labels: np.ndarray, task: Task) -> np.ndarray:
    """The true class of each image (the variance is taken within each), or one stratum for multi-label."""
    if task is Task.MULTI_LABEL:
        return np.zeros(labels.shape[0], dtype=np.int64)
    return labels_of(labels, task)


def auc_variance(terms: np.ndarray, strata: np.ndarray) -> float:
    """Variance of a sum of per-image terms, estimated within strata: sum_c n_c/(n_c-1) sum (t - mean_c)^2."""
    total = 0.0
    for c in np.unique(strata):
        t = terms[strata == c]
        if t.size > 1:
            total += t.size / (t.size - 1) * float(np.sum((t - t.mean()) ** 2))
        else:
            total += float(t[0] ** 2)
    return total


def delong_test(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, task: Task | str
) -> ImageTest:
    """DeLong's test of two models' official AUCs on the same images (see the module docstring)."""
    from scipy.stats import norm

    task = Task(task)
    auc_a, terms_a = _mean_auc_terms(labels, scores_a, task)
    auc_b, terms_b = _mean_auc_terms(labels, scores_b, task)
    diff = auc_a - auc_b
    var = auc_variance(terms_a - terms_b, _strata(labels, task))
    if var <= 0:
        # no spread to test a difference against, so it is not called significant: the paired terms differ
        # by a constant within each true class (for one column, that means equal ranks, so any difference
        # left is float rounding; it once gave p = 0 for such a difference)
        p, z, half = 1.0, None, 0.0
    else:
        z = diff / math.sqrt(var)
        p, half = float(2 * norm.sf(abs(z))), float(norm.ppf(0.975) * math.sqrt(var))
    columns = "one column" if task is Task.BINARY else "the mean of one AUC per class/label"
    return ImageTest(
        method="DeLong",
        difference=diff,
        p_value=p,
        statistic=z,
        ci_low=diff - half,
        ci_high=diff + half,
        n_images=int(np.asarray(labels).shape[0]),
        note=f"AUC {auc_a:.4f} vs {auc_b:.4f} ({columns})",
    )
