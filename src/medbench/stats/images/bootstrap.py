"""A paired bootstrap over images of ACC (multi-label tasks), balanced ACC and macro-F1: metrics that are not
sums over images, so have no closed-form paired test.

Both models are scored on the same resampled images. Each resample's confusion matrices are counted once
(with ``np.bincount``, fast enough for a thousand resamples) and every metric is read from them; the p-value
is the two-sided bootstrap one, ``2 * min(P(d* <= 0), P(d* >= 0))``.
"""

from __future__ import annotations

import math

import numpy as np

from medbench.data.registry import Task
from medbench.stats.images.outputs import hard_predictions, labels_of, n_outputs
from medbench.stats.images.result import ImageTest

DEFAULT_BOOTSTRAP = 1000
_CHUNK = 200  # bootstrap resamples drawn at once: bounds memory at 200 x N indices


def _confusions(cells: np.ndarray, idx: np.ndarray, n_cells: int) -> np.ndarray:
    """Counts of each cell in every resample: ``cells`` (N,) or (N, L), ``idx`` (B, N) -> (B, [L,] n_cells)."""
    picked = cells[idx]  # (B, N) or (B, N, L)
    if picked.ndim == 2:
        offset = np.arange(idx.shape[0])[:, None] * n_cells
        flat = np.bincount((picked + offset).ravel(), minlength=idx.shape[0] * n_cells)
        return flat.reshape(idx.shape[0], n_cells)
    b, _, n_labels = picked.shape
    offset = (np.arange(b)[:, None, None] * n_labels + np.arange(n_labels)[None, None, :]) * n_cells
    flat = np.bincount((picked + offset).ravel(), minlength=b * n_labels * n_cells)
    return flat.reshape(b, n_labels, n_cells)


def _from_confusion(cm: np.ndarray, metric: str) -> np.ndarray:
    """ACC, balanced ACC or macro-F1 of confusion matrices (..., C, C), rows true, columns predicted."""
    diag = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    true, pred = cm.sum(axis=-1).astype(np.float64), cm.sum(axis=-2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "acc":
            return diag.sum(axis=-1) / cm.sum(axis=(-2, -1))
        if metric == "balanced_acc":  # mean recall over the classes present (scikit-learn's definition)
            recall = np.where(true > 0, diag / np.where(true > 0, true, 1), np.nan)
            return np.nanmean(recall, axis=-1)
        if metric == "macro_f1":  # F1 = 2 tp / (2 tp + fp + fn), 0 when undefined (zero_division=0)
            denom = true + pred
            return np.mean(np.where(denom > 0, 2 * diag / np.where(denom > 0, denom, 1), 0.0), axis=-1)
    raise ValueError(f"unknown metric {metric!r}")


def _cells(labels: np.ndarray, pred: np.ndarray, task: Task, n_classes: int) -> tuple[np.ndarray, int]:
    """Each image's (true, predicted) cell index: y * C + p, per label (C = 2) for multi-label."""
    if task is Task.MULTI_LABEL:
        return labels * 2 + pred, 2
    return labels * n_classes + pred, n_classes


def metric_from_predictions(labels, pred, task: Task | str, metric: str, *, n_classes: int) -> float:
    """ACC, balanced ACC or macro-F1 of hard predictions, as :mod:`medbench.metrics` defines them (macro-F1
    averages over all ``n_classes``, a class never present nor predicted counting 0)."""
    task = Task(task)
    y = labels_of(labels, task)
    cells, c = _cells(y, np.asarray(pred, dtype=np.int64), task, n_classes)
    # The images as they are: one "resample" that takes each image once, read as the bootstrap reads its own.
    counts = _confusions(cells, np.arange(y.shape[0])[None, :], c * c)
    return float(_metric_of_counts(counts, c, metric, task is Task.MULTI_LABEL)[0])


def _metric_of_counts(counts: np.ndarray, c: int, metric: str, multi_label: bool) -> np.ndarray:
    """A metric of each resample from its confusion counts (:func:`_confusions`)."""
    if not multi_label:
        return _from_confusion(counts.reshape(-1, c, c), metric)
    per_label = counts.reshape(counts.shape[0], counts.shape[1], 2, 2)
    if metric == "macro_f1":  # the F1 of each label's positive class, averaged over labels
        tp, fp, fn = per_label[..., 1, 1], per_label[..., 0, 1], per_label[..., 1, 0]
        denom = (2 * tp + fp + fn).astype(np.float64)
        return np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0), axis=-1)
    return np.mean(_from_confusion(per_label, metric), axis=-1)


BOOTSTRAPPED: tuple[str, ...] = ("acc", "balanced_acc", "macro_f1")


def paired_bootstrap_many(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    metrics: tuple[str, ...] = BOOTSTRAPPED,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, ImageTest]:
    """Paired bootstrap over images of metric(a) - metric(b) for each of ``metrics`` (``acc``,
    ``balanced_acc``, ``macro_f1``), all from the same resamples: each resample's confusion matrices are
    counted once and every metric is read from them."""
    task = Task(task)
    y = labels_of(labels, task)
    pred_a, pred_b = hard_predictions(scores_a, task), hard_predictions(scores_b, task)
    k = n_outputs(scores_a, task)
    cells_a, c = _cells(y, pred_a, task, k)
    cells_b, _ = _cells(y, pred_b, task, k)
    multi = task is Task.MULTI_LABEL
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for start in range(0, n_boot, _CHUNK):
        idx = rng.integers(0, n, size=(min(_CHUNK, n_boot - start), n))
        counts_a, counts_b = _confusions(cells_a, idx, c * c), _confusions(cells_b, idx, c * c)
        for m in metrics:
            diffs[m].append(
                _metric_of_counts(counts_a, c, m, multi) - _metric_of_counts(counts_b, c, m, multi)
            )
    out = {}
    for m in metrics:
        observed = metric_from_predictions(y, pred_a, task, m, n_classes=k) - metric_from_predictions(
            y, pred_b, task, m, n_classes=k
        )
        d = np.concatenate(diffs[m])
        d = d[np.isfinite(d)]
        low, high = np.percentile(d, [2.5, 97.5]) if d.size else (math.nan, math.nan)
        out[m] = ImageTest(
            method=f"paired bootstrap ({n_boot})",
            difference=float(observed),
            p_value=_bootstrap_p(d),
            ci_low=float(low),
            ci_high=float(high),
            n_images=int(n),
        )
    return out


def paired_bootstrap(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    metric: str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> ImageTest:
    """Paired bootstrap over images of metric(a) - metric(b), for ``acc``, ``balanced_acc`` or ``macro_f1``."""
    return paired_bootstrap_many(labels, scores_a, scores_b, task, (metric,), n_boot=n_boot, seed=seed)[
        metric
    ]


def _bootstrap_p(d: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a zero difference; 1 when every resample is exactly 0 (no difference)."""
    if d.size == 0 or np.all(d == 0):
        return 1.0
    below, above = float(np.mean(d <= 0)), float(np.mean(d >= 0))
    return min(1.0, 2 * min(below, above))
