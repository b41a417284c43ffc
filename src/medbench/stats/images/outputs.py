"""Labels and scores as the official MedMNIST metrics read them: class indices or 0/1 labels, hard
predictions, and the one-vs-rest columns whose AUCs the official AUC averages."""

from __future__ import annotations

import numpy as np

from medbench.data.registry import Task


def labels_of(labels: np.ndarray, task: Task | str) -> np.ndarray:
    """(N,) class indices for single-label tasks, (N, L) 0/1 for multi-label tasks."""
    y = np.asarray(labels)
    if Task(task) is not Task.MULTI_LABEL and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    return y.astype(np.int64)


def hard_predictions(scores: np.ndarray, task: Task | str) -> np.ndarray:
    """Argmax for multi-class/ordinal; ``score > 0.5`` of the last column (binary) or of every label."""
    s = np.asarray(scores, dtype=np.float64)
    task = Task(task)
    if task is Task.MULTI_LABEL:
        return (s > 0.5).astype(np.int64)
    if task is Task.BINARY:
        return (_binary_column(s) > 0.5).astype(np.int64)
    return np.argmax(s, axis=1)


def _binary_column(s: np.ndarray) -> np.ndarray:
    if s.ndim == 2:
        return s[:, -1]  # the official rule: the last column is the positive class
    return s


def auc_columns(
    labels: np.ndarray, scores: np.ndarray, task: Task | str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (0/1 target, score) columns whose ROC AUCs the official AUC averages."""
    task = Task(task)
    y, s = labels_of(labels, task), np.asarray(scores, dtype=np.float64)
    if task is Task.BINARY:
        return [(y, _binary_column(s))]
    if task is Task.MULTI_LABEL:
        return [(y[:, k], s[:, k]) for k in range(s.shape[1])]
    return [((y == k).astype(np.int64), s[:, k]) for k in range(s.shape[1])]


def n_outputs(scores: np.ndarray, task: Task | str) -> int:
    """Classes of a single-label task (2 for binary), as the official metrics count them."""
    s = np.asarray(scores)
    return 2 if Task(task) is Task.BINARY else int(s.shape[1])
