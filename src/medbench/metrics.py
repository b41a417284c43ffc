"""Metrics for MedMNIST: the official ACC and AUC, plus extras for comparing frameworks fairly.

The official numbers follow ``getACC``/``getAUC`` of ``medmnist/evaluator.py`` (medmnist 3.0.2), so results
can be set beside the MedMNIST papers and leaderboards. Scores are probabilities: softmax outputs for
multi-class, ordinal and binary tasks, sigmoid outputs for multi-label tasks (see :func:`scores_from_logits`).

=========================  ==============================================  ================================
task                       AUC                                             ACC
=========================  ==============================================  ================================
multi-class, ordinal       mean over classes of one-vs-rest ROC AUC        accuracy of the argmax
binary-class               ROC AUC of the last score column                accuracy of ``score > 0.5``
multi-label, binary-class  mean over labels of ROC AUC                     mean over labels of the accuracy
                                                                           of ``score > 0.5``
=========================  ==============================================  ================================

Where medbench departs from the official code, it is only on inputs that code mishandles:

* **A class (or label) with no positive or no negative sample** leaves its ROC AUC undefined. The official
  code crashes inside scikit-learn. medbench raises :class:`UndefinedMetricError` naming the class; with
  ``on_missing="nan"`` it returns ``auc=nan`` and warns instead (meant for smoke tests on tiny data). It
  never averages over the classes that remain, which would give a number that looks official but is not.
* Only a trailing axis of length one is squeezed (labels ``(N, 1)`` become ``(N,)``), so a single sample is
  not mistaken for a vector of scores, as ``ndarray.squeeze()`` would do.
* Shapes, label values and score ranges are checked, with errors that say what to pass instead: the
  official code silently scores logits, labels out of range and misaligned arrays.

Extras: per-class precision, recall, F1 and support; macro-F1; balanced accuracy; confusion matrices;
expected calibration error; percentile-bootstrap confidence intervals for ACC and AUC; and prediction CSV
files in the official layout and naming, which ``medmnist.Evaluator.parse_and_evaluate`` can read.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from medbench.data.registry import SPLITS, Task, check_size
from medbench.errors import MedbenchError

__all__ = [
    "ECE_BINS",
    "BootstrapCI",
    "Evaluation",
    "MetricsInputError",
    "PredictionFileName",
    "UndefinedMetricError",
    "UndefinedMetricWarning",
    "balanced_accuracy",
    "bootstrap_ci",
    "confusion_matrix",
    "evaluate",
    "expected_calibration_error",
    "macro_f1",
    "official_metrics",
    "parse_prediction_filename",
    "per_class_metrics",
    "prediction_filename",
    "read_predictions_csv",
    "save_predictions_csv",
    "scores_from_logits",
    "sigmoid",
    "softmax",
]

THRESHOLD = 0.5  # the official decision threshold for binary and multi-label tasks (strict ``>``)
ECE_BINS = 15  # as in Guo et al. (2017), "On Calibration of Modern Neural Networks"
_SCORE_TOLERANCE = 1e-6  # float32 softmax/sigmoid outputs may stray this far outside [0, 1]
_BOOTSTRAP_CHUNK = 500_000  # resampled entries held at once: bounds memory, and was fastest (cache)
_RUN_PATTERN = re.compile(r"[\w\-+=]+")

OnMissing = Literal["raise", "nan"]


class MetricsInputError(MedbenchError, ValueError):
    """Labels or scores of the wrong shape, type or range for the task."""


class UndefinedMetricError(MedbenchError, ValueError):
    """A metric that has no value for these labels, such as AUC for a class with no positive sample."""


class UndefinedMetricWarning(UserWarning):
    """A metric returned as NaN because it is undefined for these labels."""


# --------------------------------------------------------------------------------------------------------
# Scores from logits
# --------------------------------------------------------------------------------------------------------


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64 (the maximum is subtracted so ``exp`` cannot overflow)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float64 (no overflow for large ``|x|``)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def scores_from_logits(logits: np.ndarray, task: Task | str) -> np.ndarray:
    """Turns model outputs into the scores the official metrics expect.

    Softmax over the last axis for multi-class, ordinal and two-column binary outputs; sigmoid for
    multi-label outputs and for binary models with a single logit (a softmax over one column would be
    constantly 1).

    Raises:
        MetricsInputError: if a multi-class or ordinal model has fewer than two output columns.
    """
    task = _as_task(task)
    x = np.asarray(logits, dtype=np.float64)
    if task is Task.MULTI_LABEL:
        return sigmoid(x)
    if x.ndim == 1 or x.shape[-1] == 1:
        if task is Task.BINARY:
            return sigmoid(x)
        raise MetricsInputError(
            f"A {task.value} task needs one logit per class, but got an array of shape {x.shape}.",
            "Give the model one output per class.",
        )
    return softmax(x, axis=-1)


# --------------------------------------------------------------------------------------------------------
# Input checking: every public function brings its inputs to one canonical form first
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Prepared:
    """Checked inputs. ``labels``: (N,) ints, or (N, L) 0/1 for multi-label. ``scores``: (N, C) for
    multi-class/ordinal, (N,) positive-class scores for binary, (N, L) for multi-label."""

    task: Task
    labels: np.ndarray
    scores: np.ndarray
    n_outputs: int  # classes (2 for binary) or labels

    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def unit(self) -> str:
        return "label" if self.task is Task.MULTI_LABEL else "class"


def _as_task(task: Task | str) -> Task:
    try:
        return Task(task)
    except ValueError:
        raise MetricsInputError(
            f"Unknown task {task!r}.", f"Use one of: {', '.join(repr(t.value) for t in Task)}."
        ) from None


def _squeeze_last(a: np.ndarray) -> np.ndarray:
    # The official code calls .squeeze(); dropping only a trailing axis of length one keeps N=1 working.
    return a[..., 0] if a.ndim >= 2 and a.shape[-1] == 1 else a


def _labels_array(y_true: Any, task: Task) -> np.ndarray:
    y = np.asarray(y_true)
    if task is not Task.MULTI_LABEL:
        y = _squeeze_last(y)
    want = 2 if task is Task.MULTI_LABEL else 1
    if y.ndim != want:
        shape = "(N, L)" if want == 2 else "(N,) or (N, 1)"
        raise MetricsInputError(
            f"Labels for a {task.value} task must have shape {shape}; got {y.shape}.",
            "Pass the `{split}_labels` array of the dataset's npz file as it is.",
        )
    if y.shape[0] == 0:
        raise MetricsInputError("No samples: the label array is empty.", "Evaluate on a non-empty split.")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        raise MetricsInputError(
            "Labels must be integers (class indices, or 0/1 for multi-label tasks).",
            "Pass the labels, not the scores, as y_true.",
        )
    return y.astype(np.int64)


def _scores_array(y_score: Any) -> np.ndarray:
    s = np.asarray(y_score, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        raise MetricsInputError(
            "Scores contain NaN or infinity.", "Check the model's outputs; training may have diverged."
        )
    if s.size and (s.min() < -_SCORE_TOLERANCE or s.max() > 1 + _SCORE_TOLERANCE):
        raise MetricsInputError(
            f"Scores must be probabilities in [0, 1]; got values from {s.min():.4g} to {s.max():.4g}.",
            "These look like logits: pass them through scores_from_logits(), or use from_logits=True.",
        )
    return s


def _check_label_range(labels: np.ndarray, n_outputs: int, task: Task) -> None:
    high = 1 if task in (Task.BINARY, Task.MULTI_LABEL) else n_outputs - 1
    bad = (labels < 0) | (labels > high)
    if np.any(bad):
        raise MetricsInputError(
            f"Labels must lie in 0..{high} for this {task.value} task with {n_outputs} outputs; "
            f"found {int(labels[bad][0])}.",
            "Check that the scores have one column per class of the dataset.",
        )


def _check_n_outputs(found: int, expected: int | None, task: Task) -> None:
    if expected is not None and found != expected:
        raise MetricsInputError(
            f"Scores have {found} columns but the {task.value} dataset has {expected} "
            f"{'labels' if task is Task.MULTI_LABEL else 'classes'}.",
            "Give the model one output per class (per label for multi-label datasets).",
        )


def _binary_scores(s: np.ndarray) -> np.ndarray:
    s = _squeeze_last(s)
    if s.ndim == 2 and s.shape[1] == 2:
        return s[:, -1]  # the official rule: the last column is the positive class
    if s.ndim != 1:
        raise MetricsInputError(
            f"Binary-class scores must have shape (N,), (N, 1) or (N, 2); got {s.shape}.",
            "Give the model one output (sigmoid) or two outputs (softmax).",
        )
    return s


def _prepare(y_true: Any, y_score: Any, task: Task | str, n_classes: int | None = None) -> _Prepared:
    task = _as_task(task)
    labels = _labels_array(y_true, task)
    scores = _scores_array(y_score)
    if scores.ndim == 0 or scores.shape[0] != labels.shape[0]:
        raise MetricsInputError(
            f"y_true has {labels.shape[0]} samples but y_score has shape {scores.shape}.",
            "Pass the labels and scores of the same split, in the same order.",
        )
    if task is Task.BINARY:
        _check_n_outputs(2, n_classes, task)
        scores, n_outputs = _binary_scores(scores), 2
    elif scores.ndim != 2 or scores.shape[1] < (1 if task is Task.MULTI_LABEL else 2):
        raise MetricsInputError(
            f"Scores for a {task.value} task must have shape (N, number of outputs); got {scores.shape}.",
            "Pass one column per class (per label for multi-label tasks).",
        )
    else:
        n_outputs = scores.shape[1]
        _check_n_outputs(n_outputs, n_classes, task)
        if task is Task.MULTI_LABEL and labels.shape[1] != n_outputs:
            raise MetricsInputError(
                f"Labels have {labels.shape[1]} columns but scores have {n_outputs}.",
                "Give the model one output per label.",
            )
    _check_label_range(labels, n_outputs, task)
    return _Prepared(task, labels, scores, n_outputs)


# --------------------------------------------------------------------------------------------------------
# Official ACC and AUC
# --------------------------------------------------------------------------------------------------------


def _predictions(p: _Prepared) -> np.ndarray:
    """Hard predictions as the official ACC makes them: argmax, or ``score > 0.5`` (strictly)."""
    if p.task in (Task.BINARY, Task.MULTI_LABEL):
        return (p.scores > THRESHOLD).astype(np.int64)
    return np.argmax(p.scores, axis=1)


def _auc_columns(p: _Prepared) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (0/1 target, score) pairs whose ROC AUCs the official AUC averages."""
    if p.task is Task.BINARY:
        return [(p.labels, p.scores)]
    if p.task is Task.MULTI_LABEL:
        return [(p.labels[:, i], p.scores[:, i]) for i in range(p.n_outputs)]
    return [((p.labels == i).astype(np.int64), p.scores[:, i]) for i in range(p.n_outputs)]


def _undefined_auc(p: _Prepared, index: int, n_pos: int, n_neg: int, on_missing: OnMissing) -> float:
    what = "the positive class" if p.task is Task.BINARY else f"{p.unit} {index}"
    problem = (
        f"AUC is undefined: {what} has {n_pos} positive and {n_neg} negative samples in y_true, "
        "and ROC AUC needs both."
    )
    if on_missing == "nan":
        warnings.warn(problem + " Returning auc=nan.", UndefinedMetricWarning, stacklevel=3)
        return math.nan
    raise UndefinedMetricError(
        problem, "Evaluate on a split that holds every class (the official val and test splits do)."
    )


def _official_auc(p: _Prepared, on_missing: OnMissing = "raise") -> float:
    aucs = []
    for i, (target, score) in enumerate(_auc_columns(p)):
        n_pos = int(target.sum())
        if n_pos in (0, target.shape[0]):
            return _undefined_auc(p, i, n_pos, target.shape[0] - n_pos, on_missing)
        aucs.append(float(roc_auc_score(target, score)))
    return sum(aucs) / len(aucs)  # summed in order, then divided, as the official code does


def _official_acc(p: _Prepared) -> float:
    pred = _predictions(p)
    if p.task is Task.MULTI_LABEL:
        per_label = [float(np.mean(pred[:, i] == p.labels[:, i])) for i in range(p.n_outputs)]
        return sum(per_label) / len(per_label)
    return float(np.mean(pred == p.labels))


def official_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    task: Task | str,
    *,
    n_classes: int | None = None,
    on_missing: OnMissing = "raise",
) -> dict[str, float]:
    """The official MedMNIST ACC and AUC (``medmnist.evaluator.getACC``/``getAUC``, v3.0.2).

    Args:
        y_true: labels, (N,) or (N, 1) for single-label tasks, (N, L) for multi-label tasks.
        y_score: probabilities (softmax, or sigmoid for multi-label), (N, C); binary also (N,) or (N, 1).
        task: a :class:`~medbench.data.registry.Task` or its string value.
        n_classes: if given, the number of score columns the dataset needs (checked).
        on_missing: what to do when AUC is undefined because a class has no positive (or no negative)
            sample: ``"raise"`` (default) or ``"nan"`` (return NaN and warn).

    Returns:
        ``{"acc": ..., "auc": ...}``.

    Raises:
        MetricsInputError: for inputs of the wrong shape, type or range.
        UndefinedMetricError: if AUC is undefined and ``on_missing="raise"``.
    """
    p = _prepare(y_true, y_score, task, n_classes)
    return {"acc": _official_acc(p), "auc": _official_auc(p, on_missing)}


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


# --------------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------------


def _plain_float(x: float) -> float | None:
    # NaN is not valid JSON; None (null) says "undefined" in the results store.
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True, eq=False)
class Evaluation:
    """All metrics of one set of predictions. Per-class arrays follow ``class_names``."""

    task: Task
    n_samples: int
    acc: float
    auc: float
    class_names: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    macro_f1: float
    balanced_accuracy: float
    ece: float
    confusion_matrix: np.ndarray
    acc_ci: BootstrapCI | None = None
    auc_ci: BootstrapCI | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain floats, ints, strings and lists (JSON-serialisable); undefined values become None."""
        return {
            "task": self.task.value,
            "n_samples": int(self.n_samples),
            "acc": _plain_float(self.acc),
            "auc": _plain_float(self.auc),
            "acc_ci": self.acc_ci.to_dict() if self.acc_ci else None,
            "auc_ci": self.auc_ci.to_dict() if self.auc_ci else None,
            "macro_f1": _plain_float(self.macro_f1),
            "balanced_accuracy": _plain_float(self.balanced_accuracy),
            "ece": _plain_float(self.ece),
            "ece_bins": ECE_BINS,
            "per_class": {
                "name": list(self.class_names),
                "precision": [float(v) for v in self.precision],
                "recall": [float(v) for v in self.recall],
                "f1": [float(v) for v in self.f1],
                "support": [int(v) for v in self.support],
            },
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
        }


def _class_names(p: _Prepared, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is None:
        return tuple(str(i) for i in range(p.n_outputs))
    if len(names) != p.n_outputs:
        raise MetricsInputError(
            f"Got {len(names)} class names for {p.n_outputs} {p.unit}s.",
            "Pass the dataset's labels, e.g. get_dataset(flag).labels.",
        )
    return tuple(str(n) for n in names)


def evaluate(
    y_true: np.ndarray,
    logits_or_scores: np.ndarray,
    task: Task | str,
    *,
    from_logits: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    confidence: float = 0.95,
    on_missing: OnMissing = "raise",
) -> Evaluation:
    """Computes the official ACC and AUC and every extra metric for one split's predictions.

    Args:
        y_true: labels as stored in the dataset's npz file.
        logits_or_scores: raw model outputs (``from_logits=True``) or probabilities.
        task: the dataset's task.
        from_logits: apply :func:`scores_from_logits` first.
        bootstrap: number of bootstrap resamples for confidence intervals; 0 for none.
        seed: seed of the bootstrap resampling.
        class_names: one name per class (per label for multi-label); also checks the number of outputs.
        confidence: level of the bootstrap intervals.
        on_missing: ``"raise"`` or ``"nan"`` when AUC is undefined; see :func:`official_metrics`.

    Raises:
        MetricsInputError: for inputs of the wrong shape, type or range.
        UndefinedMetricError: if AUC is undefined and ``on_missing="raise"``.
    """
    scores = scores_from_logits(logits_or_scores, task) if from_logits else logits_or_scores
    p = _prepare(y_true, scores, task, None if class_names is None else len(class_names))
    names = _class_names(p, class_names)
    acc, auc = _official_acc(p), _official_auc(p, on_missing)  # first, so an undefined AUC fails fast
    cis = _bootstrap(p, bootstrap, seed, confidence) if bootstrap else {}
    per_class, cm = _per_class(p), _confusion(p)
    return Evaluation(
        task=p.task,
        n_samples=p.n_samples,
        acc=acc,
        auc=auc,
        class_names=names,
        macro_f1=float(np.mean(per_class["f1"])),
        balanced_accuracy=_balanced(p, cm),
        ece=_ece(p),
        confusion_matrix=cm,
        acc_ci=cis.get("acc"),
        auc_ci=cis.get("auc"),
        **per_class,
    )


# --------------------------------------------------------------------------------------------------------
# Prediction files in the official layout
# --------------------------------------------------------------------------------------------------------


class PredictionFileName(NamedTuple):
    """The parts of an official prediction file name; metrics and run are None when the name lacks them."""

    flag: str
    size: int
    split: str
    auc: float | None
    acc: float | None
    run: str | None


_NAME_PATTERN = re.compile(r"(?P<flag>.+?)(?:_(?P<size>\d+))?_(?P<split>train|val|test)(?P<rest>.*)\.csv")
_METRICS_PATTERN = re.compile(r"_\[AUC\](?P<auc>[^_]+)_\[ACC\](?P<acc>[^@]+)@(?P<run>.+)")


def _size_flag(size: int) -> str:
    return "" if size == 28 else f"_{size}"


def _metric(metrics: Any, key: str) -> float:
    value = metrics.get(key) if isinstance(metrics, Mapping) else getattr(metrics, key, None)
    if value is None:
        raise MetricsInputError(
            f"The metrics for the file name have no {key!r}.",
            "Pass official_metrics(...), an Evaluation, or a mapping with 'acc' and 'auc'.",
        )
    return float(value)


def prediction_filename(flag: str, split: str, *, size: int = 28, auc: float, acc: float, run: str) -> str:
    """The official name ``{flag}{size_flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv``, where
    ``size_flag`` is empty at 28 px and ``_{size}`` otherwise.

    Raises:
        MetricsInputError: for an unknown split, or a run with characters other than letters, digits,
            ``_``, ``-``, ``+`` and ``=`` (the official parser cuts the run at the first ``.``).
        InvalidSizeError: for a size MedMNIST does not publish.
    """
    check_size(size)
    if split not in SPLITS:
        raise MetricsInputError(f"Unknown split {split!r}.", f"Use one of {', '.join(SPLITS)}.")
    if not flag or "/" in flag or "\\" in flag:
        raise MetricsInputError(f"Invalid dataset flag {flag!r}.", "Use the dataset's flag: 'pathmnist'.")
    if not _RUN_PATTERN.fullmatch(run):
        raise MetricsInputError(
            f"Invalid run name {run!r} for a prediction file.",
            "Use letters, digits, '_', '-', '+' and '=' only.",
        )
    return f"{flag}{_size_flag(size)}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv"


def parse_prediction_filename(name: str | Path) -> PredictionFileName:
    """Reads flag, size, split and (if present) metrics and run from an official prediction file name.

    Both ``{flag}_{split}...csv`` (28 px) and ``{flag}_{size}_{split}...csv`` are understood, like
    ``medmnist.Evaluator.parse_and_evaluate``; flags may themselves contain ``_``.
    """
    base = Path(name).name
    m = _NAME_PATTERN.fullmatch(base)
    if m is None:
        raise MetricsInputError(
            f"{base!r} is not a MedMNIST prediction file name.",
            "Name it {flag}[_{size}]_{split}_[AUC]{auc}_[ACC]{acc}@{run}.csv (save_predictions_csv does).",
        )
    size = int(m["size"]) if m["size"] else 28
    mm = _METRICS_PATTERN.fullmatch(m["rest"])
    if mm is None:
        return PredictionFileName(m["flag"], size, m["split"], None, None, None)
    return PredictionFileName(m["flag"], size, m["split"], float(mm["auc"]), float(mm["acc"]), mm["run"])


def save_predictions_csv(
    path_or_folder: str | Path,
    y_score: np.ndarray,
    *,
    flag: str,
    split: str,
    size: int = 28,
    metrics: Mapping[str, float] | Evaluation | None = None,
    run: str | None = None,
) -> Path:
    """Writes scores as an official MedMNIST prediction file: ``index,score_0,score_1,...`` per sample,
    no header, which ``medmnist.Evaluator.parse_and_evaluate`` reads.

    Args:
        path_or_folder: a ``.csv`` path to write to as given, or a folder (created if needed) in which the
            file gets its official name from ``flag``, ``size``, ``split``, ``metrics`` and ``run``.
        y_score: probabilities, (N, C), or (N,) for a single binary score.
        metrics: ``acc`` and ``auc`` for the name, from :func:`official_metrics` or :func:`evaluate`;
            needed when a folder is given.
        run: the name's run tag; defaults to the current UTC time, ``YYYYmmddTHHMMSS``.

    Returns:
        The path written.
    """
    scores = np.asarray(y_score)
    if scores.ndim not in (1, 2) or scores.shape[0] == 0:
        raise MetricsInputError(
            f"Scores to save must have shape (N,) or (N, C) with N > 0; got {scores.shape}.",
            "Pass the score array that official_metrics() accepted.",
        )
    target = Path(path_or_folder)
    if target.suffix.lower() != ".csv" or target.is_dir():
        if metrics is None:
            raise MetricsInputError(
                "The official file name carries ACC and AUC, but no metrics were given.",
                "Pass metrics=official_metrics(...) or a full .csv path.",
            )
        run = run if run is not None else time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        auc, acc = _metric(metrics, "auc"), _metric(metrics, "acc")
        target.mkdir(parents=True, exist_ok=True)
        target = target / prediction_filename(flag, split, size=size, auc=auc, acc=acc, run=run)
    rows = scores.reshape(scores.shape[0], -1)
    # str() of a numpy float is its shortest round-trip form, as pandas (the official writer) prints it.
    lines = [f"{i}," + ",".join(map(str, row)) for i, row in enumerate(rows)]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def read_predictions_csv(path: str | Path) -> tuple[str, int, str, np.ndarray]:
    """Reads an official prediction file.

    Returns:
        ``(flag, size, split, scores)`` with flag, size and split parsed from the file name (either
        naming form) and scores (N, C) in float64, ordered by the index column as the official reader does.
    """
    path = Path(path)
    name = parse_prediction_filename(path)
    table = np.loadtxt(path, delimiter=",", ndmin=2, encoding="utf-8-sig")
    if table.shape[1] < 2:
        raise MetricsInputError(
            f"{path} has no score columns.", "Each row must be index,score_0,score_1,... without a header."
        )
    index = table[:, 0]
    if np.unique(index).shape[0] != index.shape[0]:
        raise MetricsInputError(f"{path} repeats sample indices.", "Write each sample exactly once.")
    return name.flag, name.size, name.split, table[np.argsort(index, kind="stable"), 1:]
