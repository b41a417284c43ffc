"""The numpy validation loss (medbench.loss) against scikit-learn's log loss, task by task."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss

from medbench.loss import mean_loss
from medbench.metrics import sigmoid, softmax


def test_single_label_tasks_are_softmax_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 4)) * 3
    labels = rng.integers(0, 4, (50, 1))
    expected = log_loss(labels.ravel(), softmax(logits), labels=range(4))
    assert mean_loss(labels, logits, "multi-class") == pytest.approx(expected, rel=1e-9)
    two = logits[:, :2]
    binary = labels % 2
    assert mean_loss(binary, two, "binary-class") == pytest.approx(
        log_loss(binary.ravel(), softmax(two), labels=[0, 1]), rel=1e-9
    )


def test_multi_label_and_one_logit_binary_are_binary_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((30, 5))
    labels = rng.integers(0, 2, (30, 5))
    per_label = [log_loss(labels[:, j], sigmoid(logits[:, j]), labels=[0, 1]) for j in range(5)]
    assert mean_loss(labels, logits, "multi-label, binary-class") == pytest.approx(
        np.mean(per_label), rel=1e-9
    )
    one = logits[:, :1]
    assert mean_loss(labels[:, :1], one, "binary-class") == pytest.approx(per_label[0], rel=1e-9)


def test_a_confident_mistake_costs_its_true_loss():
    # softmax in float64 rounds the true class's probability to 0; from the logits the loss is exactly 800
    assert mean_loss(np.array([[0]]), np.array([[0.0, 800.0]]), "multi-class") == pytest.approx(800.0)
