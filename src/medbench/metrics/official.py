"""The official MedMNIST ACC and AUC (``getACC``/``getAUC`` of ``medmnist/evaluator.py``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

from medbench.data.registry import Task
from medbench.metrics.inputs import (
    THRESHOLD,
    OnMissing,
    UndefinedMetricError,
    UndefinedMetricWarning,
    _prepare,
    _Prepared,
)

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
