"""Scores from logits, and the checks that bring every metric's inputs to one canonical form."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medbench.data.registry import Task
from medbench.errors import MedbenchError

THRESHOLD = 0.5  # the official decision threshold for binary and multi-label tasks (strict ``>``)
_SCORE_TOLERANCE = 1e-6  # float32 softmax/sigmoid outputs may stray this far outside [0, 1]

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


def _plain_float(x: float) -> float | None:
    # NaN is not valid JSON; None (null) says "undefined" in the results store.
    return None if math.isnan(x) else float(x)
