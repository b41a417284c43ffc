"""The majority-class baseline from stored counts, and the training split's counts that training stores."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from medbench.report.baseline import baseline_of, comparison_baseline, no_better
from medbench.results import RunRecord
from medbench.training import train_label_counts


def record(metrics: dict) -> RunRecord:
    fields = dict.fromkeys(RunRecord.__dataclass_fields__)
    return RunRecord(**{**fields, "run_id": "r", "kind": "train", "status": "completed", "metrics": metrics})


def per_class(support, names=("a", "b", "c")) -> dict:
    return {"name": list(names), "support": list(support), "recall": [0.0] * len(support)}


def test_the_majority_comes_from_the_training_split_and_the_acc_from_the_test_split():
    # the training split's largest class is "c"; the test split's is "a": the baseline predicts "c"
    run = record(
        {
            "test_task": "multi-class",
            "test_per_class": per_class([50, 20, 30]),
            "train_label_counts": {"n_samples": 100, "per_class": [10, 20, 70]},
        }
    )
    baseline = baseline_of(run)
    assert baseline.majority == "c" and baseline.from_training
    assert baseline.acc == pytest.approx(0.30) and baseline.auc == 0.5
    assert baseline.balanced_acc == pytest.approx(1 / 3)


def test_without_training_counts_the_test_majority_stands_in_and_says_so():
    baseline = baseline_of(record({"test_task": "multi-class", "test_per_class": per_class([50, 20, 30])}))
    assert baseline.majority == "a" and not baseline.from_training
    assert baseline.acc == pytest.approx(0.5)
    assert "training counts not recorded" in baseline.describe()
    with_counts = record(
        {
            "test_per_class": per_class([50, 20, 30]),
            "train_label_counts": {"n_samples": 3, "per_class": [1, 2, 0]},
        }
    )
    assert (
        comparison_baseline([record({"test_per_class": per_class([5, 1, 1])}), with_counts]).majority == "b"
    )


def test_multi_label_predicts_each_labels_majority_value():
    # 100 test images; label 0 positive in 80 (training: mostly positive), label 1 in 10 (mostly negative)
    run = record(
        {
            "test_task": "multi-label, binary-class",
            "test_n_samples": 100,
            "test_per_class": per_class([80, 10], names=("x", "y")),
            "train_label_counts": {"n_samples": 1000, "per_class": [700, 100]},
        }
    )
    baseline = baseline_of(run)
    assert baseline.multi_label and baseline.acc == pytest.approx((0.80 + 0.90) / 2)


def test_nothing_stored_gives_no_baseline_and_claims_nothing():
    assert baseline_of(record({"test_acc": 0.9})) is None
    assert baseline_of(record({"test_per_class": {"support": [0, 0]}})) is None
    assert no_better(0.1, None) is False and no_better(None, baseline_of(record({}))) is False


def test_training_stores_its_splits_counts_per_class_and_per_label():
    data = _Data({"train": np.array([[0], [2], [2], [3]])}, multi_label=False, n_classes=4)
    assert train_label_counts(data) == {"n_samples": 4, "per_class": [1, 0, 2, 1]}
    multi = _Data({"train": np.array([[1, 0, 1], [1, 1, 0]])}, multi_label=True, n_classes=3)
    assert train_label_counts(multi) == {"n_samples": 2, "per_class": [2, 1, 1]}


class _Data:
    """The part of ``MedMNISTData`` that ``train_label_counts`` reads."""

    def __init__(self, labels: dict, *, multi_label: bool, n_classes: int) -> None:
        self._labels, self.multi_label, self.info = labels, multi_label, SimpleNamespace(n_classes=n_classes)

    def __getitem__(self, split: str):
        return SimpleNamespace(labels=self._labels[split])
