"""Percentile-bootstrap confidence intervals for the official ACC and AUC."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.data.registry import Task
from medbench.metrics.inputs import (
    MetricsInputError,
    UndefinedMetricWarning,
    _plain_float,
    _prepare,
    _Prepared,
)
from medbench.metrics.official import _auc_columns, _predictions

_BOOTSTRAP_CHUNK = 500_000  # resampled entries held at once: bounds memory, and was fastest (cache)


# --------------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile-bootstrap confidence interval.

    ``n_skipped`` counts resamples left out because the metric was undefined in them (for AUC: a class
    with no positive or no negative sample in the resample); the percentiles come from the rest.
    """

    low: float
    high: float
    confidence: float
    n_boot: int
    n_skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": _plain_float(self.low),
            "high": _plain_float(self.high),
            "confidence": float(self.confidence),
            "n_boot": int(self.n_boot),
            "n_skipped": int(self.n_skipped),
            "method": "percentile",
        }


@dataclass(frozen=True, eq=False)
class _AucColumn:
    """One column's scores sorted once, so every resample's AUC is a few vectorised sums."""

    order: np.ndarray  # sorts the samples by score
    positive: np.ndarray  # positions (in sorted order) of the positive samples
    group_start: np.ndarray  # for each positive: where its block of tied scores starts (sorted order)
    group_end: np.ndarray  # ... and ends (exclusive)

    @classmethod
    def build(cls, target: np.ndarray, score: np.ndarray) -> _AucColumn:
        order = np.argsort(score, kind="stable")
        s = score[order]
        new_group = np.r_[True, s[1:] != s[:-1]]
        starts = np.flatnonzero(new_group)
        ends = np.r_[starts[1:], s.shape[0]]
        group = np.cumsum(new_group) - 1
        positive = np.flatnonzero(target[order] == 1)
        return cls(order, positive, starts[group[positive]], ends[group[positive]])

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """ROC AUC for each row of integer sample counts ``weights`` (B, N); NaN where a class is absent.

        AUC is the Mann-Whitney statistic: the chance a positive outscores a negative, ties counting half,
        which is what scikit-learn's trapezoidal ROC AUC equals. Integer sums keep it exact and fast.
        """
        w = weights[:, self.order]
        pos_w = w[:, self.positive].astype(np.int64)
        w[:, self.positive] = 0  # now only negatives carry weight
        neg_cum = np.zeros((w.shape[0], w.shape[1] + 1), dtype=w.dtype)
        np.cumsum(w, axis=1, out=neg_cum[:, 1:])
        below = neg_cum[:, self.group_start]
        tied = neg_cum[:, self.group_end] - below
        twice_wins = np.sum(pos_w * (2 * below + tied), axis=1)  # doubled so half-ties stay integers
        n_pos, n_neg = pos_w.sum(axis=1), neg_cum[:, -1].astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = twice_wins / (2.0 * n_pos * n_neg)
        auc[(n_pos == 0) | (n_neg == 0)] = np.nan
        return auc


def _per_sample_correct(p: _Prepared) -> np.ndarray:
    """Each sample's share of correct decisions; its mean over any resample is that resample's ACC."""
    right = _predictions(p) == p.labels
    return right.mean(axis=1) if p.task is Task.MULTI_LABEL else right.astype(np.float64)


def _resample_counts(rng: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """How often each sample is drawn in each of ``n_rows`` resamples of size n (with replacement)."""
    idx = rng.integers(0, n, size=(n_rows, n))
    idx += (np.arange(n_rows) * n)[:, None]
    # int32 halves the memory traffic of the AUC sums; counts never exceed n.
    return np.bincount(idx.ravel(), minlength=n_rows * n).reshape(n_rows, n).astype(np.int32)


def _bootstrap_replicates(p: _Prepared, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ACC and AUC of ``n_boot`` resamples (AUC NaN where undefined), drawn in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    n = p.n_samples
    correct = _per_sample_correct(p)
    columns = [_AucColumn.build(t, s) for t, s in _auc_columns(p)]
    acc, auc = np.empty(n_boot), np.empty(n_boot)
    chunk = max(1, _BOOTSTRAP_CHUNK // n)  # fixed by n, so the draws depend only on (seed, n, n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        counts = _resample_counts(rng, stop - start, n)
        acc[start:stop] = counts @ correct / n
        # A NaN in any column makes the mean NaN: the resample's AUC is undefined, as officially.
        auc[start:stop] = np.mean([c.auc(counts) for c in columns], axis=0)
    return acc, auc


def _percentile_ci(values: np.ndarray, confidence: float, n_boot: int) -> BootstrapCI:
    valid = values[~np.isnan(values)]
    n_skipped = n_boot - valid.shape[0]
    if valid.shape[0] == 0:
        return BootstrapCI(math.nan, math.nan, confidence, n_boot, n_skipped)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(valid, [tail, 100 - tail])
    return BootstrapCI(float(low), float(high), confidence, n_boot, n_skipped)


def _bootstrap(p: _Prepared, n_boot: int, seed: int, confidence: float) -> dict[str, BootstrapCI]:
    if n_boot < 1:
        raise MetricsInputError(f"n_boot must be at least 1; got {n_boot}.", "Use e.g. 1000 resamples.")
    if not 0 < confidence < 1:
        raise MetricsInputError(f"confidence must lie in (0, 1); got {confidence}.", "Use e.g. 0.95.")
    acc, auc = _bootstrap_replicates(p, n_boot, seed)
    cis = {"acc": _percentile_ci(acc, confidence, n_boot), "auc": _percentile_ci(auc, confidence, n_boot)}
    if cis["auc"].n_skipped:
        warnings.warn(
            f"AUC was undefined in {cis['auc'].n_skipped} of {n_boot} bootstrap resamples (a class was "
            "missing); its interval uses the others.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return cis


def bootstrap_ci(
    y_true: np.ndarray,
    y_score: np.ndarray,
    task: Task | str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, BootstrapCI]:
    """Percentile-bootstrap confidence intervals for the official ACC and AUC.

    Samples are drawn with replacement ``n_boot`` times (seeded, so the same inputs and seed give the same
    interval); each resample's official ACC and AUC are computed, and the interval runs from the
    ``(1 - confidence) / 2`` to the ``(1 + confidence) / 2`` quantile. Resamples in which AUC is undefined
    are skipped and counted in ``n_skipped`` (with a warning).

    Returns:
        ``{"acc": BootstrapCI, "auc": BootstrapCI}``.
    """
    return _bootstrap(_prepare(y_true, y_score, task), n_boot, seed, confidence)
