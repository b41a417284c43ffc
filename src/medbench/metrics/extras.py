"""Extras beside the official metrics: per-class report, confusion matrices, balanced accuracy, calibration."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support

from medbench.data.registry import Task
from medbench.metrics.inputs import THRESHOLD, MetricsInputError, _prepare, _Prepared
from medbench.metrics.official import _predictions

ECE_BINS = 15  # as in Guo et al. (2017), "On Calibration of Modern Neural Networks"


# --------------------------------------------------------------------------------------------------------
# Extras: per-class report, confusion matrices, balanced accuracy, calibration
# --------------------------------------------------------------------------------------------------------


def _per_class(p: _Prepared) -> dict[str, np.ndarray]:
    pred = _predictions(p)
    if p.task is Task.MULTI_LABEL:
        # One binary problem per label, scored on its positive class; a loop keeps L=1 unambiguous.
        rows = [
            precision_recall_fscore_support(
                p.labels[:, i], pred[:, i], labels=[1], average=None, zero_division=0
            )
            for i in range(p.n_outputs)
        ]
        prec, rec, f1, sup = (np.concatenate(col) for col in zip(*rows, strict=True))
    else:
        prec, rec, f1, sup = precision_recall_fscore_support(
            p.labels, pred, labels=np.arange(p.n_outputs), average=None, zero_division=0
        )
    return {
        "precision": prec.astype(np.float64),
        "recall": rec.astype(np.float64),
        "f1": f1.astype(np.float64),
        "support": sup.astype(np.int64),
    }


def per_class_metrics(y_true: np.ndarray, y_score: np.ndarray, task: Task | str) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (per label for multi-label tasks).

    Predictions are those of the official ACC (argmax, or ``score > 0.5``); a ratio with a zero
    denominator counts as 0 (scikit-learn's ``zero_division=0``). For binary tasks both classes are listed.
    """
    return _per_class(_prepare(y_true, y_score, task))


def macro_f1(y_true: np.ndarray, y_score: np.ndarray, task: Task | str) -> float:
    """Unweighted mean of the per-class F1 over all classes (both classes for binary tasks, every label
    for multi-label tasks); a class never seen and never predicted contributes 0."""
    return float(np.mean(_per_class(_prepare(y_true, y_score, task))["f1"]))


def _confusion(p: _Prepared) -> np.ndarray:
    pred = _predictions(p)
    if p.task is not Task.MULTI_LABEL:
        return _sk_confusion_matrix(p.labels, pred, labels=np.arange(p.n_outputs))
    y, q = p.labels.astype(bool), pred.astype(bool)
    tn, fp = (~y & ~q).sum(axis=0), (~y & q).sum(axis=0)
    fn, tp = (y & ~q).sum(axis=0), (y & q).sum(axis=0)
    return np.stack([np.stack([tn, fp], axis=-1), np.stack([fn, tp], axis=-1)], axis=-2)


def confusion_matrix(y_true: np.ndarray, y_score: np.ndarray, task: Task | str) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    Returns:
        (C, C) with rows the true class and columns the predicted class, for single-label tasks; for
        multi-label tasks (L, 2, 2), one ``[[tn, fp], [fn, tp]]`` per label (scikit-learn's
        ``multilabel_confusion_matrix`` layout).
    """
    return _confusion(_prepare(y_true, y_score, task))


def _balanced_from_confusion(cm: np.ndarray) -> float:
    # Mean recall over the classes present in y_true, as scikit-learn's balanced_accuracy_score.
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _balanced(p: _Prepared, cm: np.ndarray | None = None) -> float:
    cm = _confusion(p) if cm is None else cm
    if p.task is Task.MULTI_LABEL:
        return float(np.mean([_balanced_from_confusion(c) for c in cm]))
    return _balanced_from_confusion(cm)


def balanced_accuracy(y_true: np.ndarray, y_score: np.ndarray, task: Task | str) -> float:
    """Mean recall over the classes present in y_true (scikit-learn's definition); for multi-label tasks
    the mean over labels of each label's balanced accuracy (mean of sensitivity and specificity)."""
    return _balanced(_prepare(y_true, y_score, task))


def _top_label(p: _Prepared) -> tuple[np.ndarray, np.ndarray]:
    """Confidence in the predicted class, and whether that prediction is right, one entry per decision."""
    if p.task is Task.BINARY or p.task is Task.MULTI_LABEL:
        s, y = p.scores.ravel(), p.labels.ravel()
        return np.maximum(s, 1.0 - s), (s > THRESHOLD).astype(np.int64) == y
    return p.scores.max(axis=1), np.argmax(p.scores, axis=1) == p.labels


def _ece(p: _Prepared, n_bins: int = ECE_BINS) -> float:
    confidence, correct = _top_label(p)
    confidence = np.clip(confidence, 0.0, 1.0)
    # Bins are (k/n, (k+1)/n]; the first also takes confidence 0, which a top label cannot reach anyway.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    gap -= np.bincount(bins, weights=confidence, minlength=n_bins)
    # sum_b (n_b / N) * |acc_b - conf_b| == sum_b |sum(correct_b) - sum(conf_b)| / N
    return float(np.sum(np.abs(gap)) / count.sum())


def expected_calibration_error(
    y_true: np.ndarray, y_score: np.ndarray, task: Task | str, *, n_bins: int = ECE_BINS
) -> float:
    """Top-label expected calibration error with equal-width bins (Guo et al., 2017).

    Each decision's confidence is the probability of the class it predicts: the largest softmax score
    for multi-class and ordinal tasks, ``max(p, 1 - p)`` for binary tasks and for each (sample, label)
    pair of a multi-label task (pooled, so N * L decisions). Decisions are grouped into ``n_bins``
    bins ``(k/n_bins, (k+1)/n_bins]`` by confidence, and
    ``ECE = sum over bins of (bin size / number of decisions) * |accuracy in bin - mean confidence in bin|``.
    """
    if n_bins < 1:
        raise MetricsInputError(f"n_bins must be at least 1; got {n_bins}.", "Use the default of 15.")
    return _ece(_prepare(y_true, y_score, task), n_bins)
