"""The majority-class baseline: what a model scores that always predicts the most frequent training class.

On imbalanced data a model can reach a respectable-looking ACC by predicting one class for every image
(DermaMNIST's nevi are two-thirds of its test set). The report puts this baseline beside every comparison and
warns when a run does no better, rather than bolding such a run as the best.

Computed from what training stores (no data file is read): the test split's images per class
(``test_per_class.support``) and the training split's (``train_label_counts``, recorded since the report
needed it). For runs stored before that, the most frequent *test* class stands in, and the baseline says so.
For multi-label tasks the official ACC is the mean over labels of the per-label accuracy, so the baseline
predicts each label's majority value. Its AUC is 0.5 by definition: a constant score ranks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medbench.results import RunRecord

MULTI_LABEL = "multi-label, binary-class"
# A run's ACC within this of the baseline's is "no better": float noise, or the same predictions.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Baseline:
    """``acc``, ``auc`` and ``balanced_acc`` as fractions; ``majority`` names the predicted class."""

    acc: float
    auc: float
    balanced_acc: float
    majority: str
    from_training: bool  # False: the training counts were not stored, the test split's majority stands in
    multi_label: bool = False

    def describe(self) -> str:
        if self.multi_label:
            return "each label's majority value in the training split, for every image"
        where = "training" if self.from_training else "test (training counts not recorded)"
        return f"“{self.majority}”, the most frequent class of the {where} split, for every image"


def _ints(value: Any) -> list[int] | None:
    if isinstance(value, list) and value and all(isinstance(v, int) and v >= 0 for v in value):
        return list(value)
    return None


def _train_counts(run: RunRecord, n_classes: int) -> tuple[list[int], int] | None:
    stored = (run.metrics or {}).get("train_label_counts")
    if not isinstance(stored, dict):
        return None
    counts, n = _ints(stored.get("per_class")), stored.get("n_samples")
    if counts is None or len(counts) != n_classes or not isinstance(n, int) or n <= 0:
        return None
    return counts, n


def baseline_of(run: RunRecord) -> Baseline | None:
    """The baseline for ``run``'s test split, or None when the run stored no per-class test support."""
    metrics = run.metrics or {}
    table = metrics.get("test_per_class")
    support = _ints(table.get("support")) if isinstance(table, dict) else None
    if support is None:
        return None
    names = table.get("name") if isinstance(table.get("name"), list) else None
    names = (
        [str(n) for n in names]
        if names and len(names) == len(support)
        else [str(i) for i in range(len(support))]
    )
    train = _train_counts(run, len(support))
    if metrics.get("test_task") == MULTI_LABEL:
        n_test = metrics.get("test_n_samples")
        if not isinstance(n_test, int) or n_test <= 0:
            return None
        # Per label: predict positive where most training images are positive (else negative).
        counts, n = train if train else (support, n_test)
        positive = [c * 2 > n for c in counts]
        right = [s if pos else n_test - s for s, pos in zip(support, positive, strict=True)]
        acc = sum(right) / (n_test * len(support))
        return Baseline(acc, 0.5, 0.5, "per-label majority", train is not None, multi_label=True)
    total = sum(support)
    if total <= 0:
        return None
    counts = train[0] if train else support
    majority = max(range(len(counts)), key=lambda i: (counts[i], -i))  # ties: the lower index, as argmax
    present = sum(1 for s in support if s > 0)
    # Balanced ACC = mean recall over the classes present in the test split: 1 for the majority, 0 elsewhere.
    balanced = (1.0 if support[majority] > 0 else 0.0) / max(1, present)
    return Baseline(support[majority] / total, 0.5, balanced, names[majority], train is not None)


def comparison_baseline(runs: Sequence[RunRecord]) -> Baseline | None:
    """The baseline of a comparison's runs (one test split): from the first run that allows it, preferring
    one that stored its training counts."""
    baselines = [b for b in (baseline_of(r) for r in runs) if b is not None]
    return next((b for b in baselines if b.from_training), baselines[0] if baselines else None)


def no_better(acc: float | None, baseline: Baseline | None) -> bool:
    """Whether a test ACC does not beat the baseline (None when either is unknown: nothing to claim)."""
    return acc is not None and baseline is not None and acc <= baseline.acc + TOLERANCE
