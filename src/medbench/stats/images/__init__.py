"""Paired tests on the same test images: do two models' predictions differ on this test set?

One test per metric, each on the official MedMNIST definitions (:mod:`medbench.metrics`):

- **ACC, single-label tasks**: McNemar's exact test on the images one model gets right and the other wrong
  (:mod:`~medbench.stats.images.mcnemar`).
- **AUC**: DeLong's test, extended to the official AUC of a multi-class task (the mean of one-vs-rest AUCs)
  and written here because no library in the stack has it (:mod:`~medbench.stats.images.delong`).
- **ACC of multi-label tasks, balanced ACC and macro-F1**: a paired bootstrap over images (the same resampled
  images for both models), because these are not sums over images with a closed-form paired test
  (:mod:`~medbench.stats.images.bootstrap`).

Every test returns an :class:`ImageTest`; :func:`image_tests` picks the test of each metric. Scores are
probabilities as :func:`medbench.metrics.scores_from_logits` gives them; labels as stored, read as the
official metrics read them (:mod:`~medbench.stats.images.outputs`).
"""

from __future__ import annotations

import numpy as np

from medbench.data.registry import Task
from medbench.stats.images.bootstrap import DEFAULT_BOOTSTRAP, paired_bootstrap_many
from medbench.stats.images.delong import delong_test
from medbench.stats.images.mcnemar import mcnemar_exact
from medbench.stats.images.outputs import hard_predictions, labels_of
from medbench.stats.images.result import ImageTest

__all__ = ["DEFAULT_BOOTSTRAP", "ImageTest", "image_test", "image_tests"]


def image_tests(
    metrics: tuple[str, ...],
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, ImageTest | str]:
    """The paired test of each of ``metrics`` (``acc``, ``auc``, ``balanced_acc``, ``macro_f1``) on these
    images, or for a metric whose test cannot run (AUC with a class absent) the reason as a string."""
    task = Task(task)
    out: dict[str, ImageTest | str] = {}
    boot = [
        m for m in metrics if m in ("balanced_acc", "macro_f1") or (m == "acc" and task is Task.MULTI_LABEL)
    ]
    if boot:
        out.update(
            paired_bootstrap_many(labels, scores_a, scores_b, task, tuple(boot), n_boot=n_boot, seed=seed)
        )
    if "acc" in metrics and task is not Task.MULTI_LABEL:
        y = labels_of(labels, task)
        out["acc"] = mcnemar_exact(
            hard_predictions(scores_a, task) == y, hard_predictions(scores_b, task) == y
        )
    if "auc" in metrics:
        try:
            out["auc"] = delong_test(labels, scores_a, scores_b, task)
        except ValueError as err:  # a class with no positive or no negative image: AUC is undefined
            out["auc"] = str(err)
    return out


def image_test(
    metric: str,
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    task: Task | str,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> ImageTest:
    """The paired test for one ``metric`` on these images (see :func:`image_tests`).

    Raises:
        ValueError: if the test cannot run (AUC undefined for a class).
    """
    result = image_tests((metric,), labels, scores_a, scores_b, task, n_boot=n_boot, seed=seed)[metric]
    if isinstance(result, str):
        raise ValueError(result)
    return result
