"""Every metric of one set of predictions at once: :func:`evaluate` and its :class:`Evaluation`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.data.registry import Task
from medbench.metrics.bootstrap import BootstrapCI, _bootstrap
from medbench.metrics.extras import ECE_BINS, _balanced, _confusion, _ece, _per_class
from medbench.metrics.inputs import (
    MetricsInputError,
    OnMissing,
    _plain_float,
    _prepare,
    _Prepared,
    scores_from_logits,
)
from medbench.metrics.official import _official_acc, _official_auc

# --------------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------------


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
