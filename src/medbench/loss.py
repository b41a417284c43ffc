"""The training criterion of a set of logits, in numpy: the validation loss that ``select_metric = "val_loss"``
minimises.

The same criterion every back-end trains with, without label smoothing (the validation loss measures the
model, not the recipe): softmax cross-entropy for multi-class, ordinal and binary tasks (PyTorch's
``CrossEntropyLoss``; a binary model with a single logit uses the binary cross-entropy of that logit), mean
binary cross-entropy over every label for multi-label tasks (``BCEWithLogitsLoss``). From the logits through
scipy's ``log_softmax`` and ``log_expit``, so a confident wrong prediction costs its true, large loss instead
of ``log(0)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit, log_softmax

from medbench.data.registry import Task


def mean_loss(labels: np.ndarray, logits: np.ndarray, task: Task | str) -> float:
    """Mean loss per image of ``logits`` ``(N, C)`` against MedMNIST-layout ``labels`` (``(N, 1)`` or ``(N, L)``)."""
    task = Task(task)
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim == 1:
        x = x[:, None]
    if task is Task.MULTI_LABEL or x.shape[1] == 1:  # binary cross-entropy of each logit
        y = y.reshape(x.shape).astype(np.float64)
        return float(-np.mean(y * log_expit(x) + (1.0 - y) * log_expit(-x)))
    index = y.reshape(-1).astype(np.int64)
    return float(-np.mean(log_softmax(x, axis=1)[np.arange(len(index)), index]))
