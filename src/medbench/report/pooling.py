"""One framework's completed runs of a comparison, pooled over seeds: numbers only.

Each figure over seeds is a :class:`Stat` (mean, sample standard deviation, n, min, max); the bootstrap
interval a run stored is a :class:`CI`; recall per class is a :class:`ClassRecall`; a
:class:`FrameworkResult` holds all of them for one framework, and the run the report shows in detail (the
best validation AUC, chosen without looking at the test set).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from medbench.results import RunRecord


def is_number(value: Any) -> bool:
    """A finite int or float: the only stored figures that count (not None, NaN or a string)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass(frozen=True)
class Stat:
    """One figure over seeds: ``std`` is the sample standard deviation (ddof=1), None for a single seed."""

    mean: float
    std: float | None
    n: int
    min: float
    max: float

    @classmethod
    def of(cls, values: Iterable[Any]) -> Stat | None:
        """The statistics of the finite numbers among ``values``; None when there are none."""
        numbers = [float(v) for v in values if is_number(v)]
        if not numbers:
            return None
        n = len(numbers)
        mean = sum(numbers) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / (n - 1)) if n > 1 else None
        return cls(mean=mean, std=std, n=n, min=min(numbers), max=max(numbers))


def metric(run: RunRecord, key: str) -> Any:
    return (run.metrics or {}).get(key)


def timing(run: RunRecord, key: str) -> Any:
    return (run.timings or {}).get(key)


def _number(value: Any) -> float:
    return float(value) if is_number(value) else -math.inf


@dataclass(frozen=True)
class CI:
    low: float
    high: float
    seed: int | None  # the run it comes from


@dataclass(frozen=True)
class ClassRecall:
    """Test recall per class (per label for multi-label tasks) over seeds, with each class's test images."""

    names: tuple[str, ...]
    recall: tuple[Stat | None, ...]
    support: tuple[int, ...] | None  # None when the pooled runs disagree on it
    multi_label: bool = False

    @classmethod
    def of(cls, runs: Sequence[RunRecord]) -> ClassRecall | None:
        """Pooled over the runs that stored ``test_per_class`` with the same class names as the first."""
        tables = [t for t in (_per_class_table(r) for r in runs) if t is not None]
        if not tables:
            return None
        names = tables[0][0]
        same = [t for t in tables if t[0] == names]
        supports = {t[2] for t in same}
        return cls(
            names=names,
            recall=tuple(Stat.of(t[1][i] for t in same) for i in range(len(names))),
            support=supports.pop() if len(supports) == 1 else None,
            multi_label=any(metric(r, "test_task") == "multi-label, binary-class" for r in runs),
        )


def _per_class_table(run: RunRecord) -> tuple[tuple[str, ...], list[Any], tuple[int, ...] | None] | None:
    """(names, recalls, supports) from a run's ``test_per_class`` (``EvaluationResult.to_dict``), if stored."""
    table = metric(run, "test_per_class")
    recall = table.get("recall") if isinstance(table, dict) else None
    if not isinstance(recall, list) or not recall:
        return None
    names = table.get("name")
    if not isinstance(names, list) or len(names) != len(recall):
        names = [str(i) for i in range(len(recall))]
    support = table.get("support")
    ok = (
        isinstance(support, list) and len(support) == len(recall) and all(isinstance(n, int) for n in support)
    )
    return tuple(str(n) for n in names), recall, tuple(support) if ok else None


@dataclass
class FrameworkResult:
    """One framework's completed runs in a comparison, pooled over seeds."""

    framework: str
    runs: list[RunRecord]
    test_acc: Stat | None = None
    test_auc: Stat | None = None
    test_balanced_acc: Stat | None = None  # mean recall over classes: what imbalanced data needs beside ACC
    test_macro_f1: Stat | None = None
    class_recall: ClassRecall | None = None
    val_auc: Stat | None = None
    s_per_epoch: Stat | None = None
    images_per_s: Stat | None = None
    first_step_s: Stat | None = None
    best_run: RunRecord | None = None  # best validation AUC: chosen without looking at the test set
    acc_ci: CI | None = None
    auc_ci: CI | None = None

    @classmethod
    def of(cls, framework: str, runs: list[RunRecord]) -> FrameworkResult:
        runs = sorted(runs, key=lambda r: (r.seed is None, r.seed or 0, r.created_at))
        best = max(runs, key=lambda r: (_number(metric(r, "val_auc")), _number(metric(r, "test_acc"))))
        return cls(
            framework=framework,
            runs=runs,
            test_acc=Stat.of(metric(r, "test_acc") for r in runs),
            test_auc=Stat.of(metric(r, "test_auc") for r in runs),
            test_balanced_acc=Stat.of(metric(r, "test_balanced_accuracy") for r in runs),
            test_macro_f1=Stat.of(metric(r, "test_macro_f1") for r in runs),
            class_recall=ClassRecall.of(runs),
            val_auc=Stat.of(metric(r, "val_auc") for r in runs),
            s_per_epoch=Stat.of(timing(r, "train_s_per_epoch") for r in runs),
            images_per_s=Stat.of(timing(r, "steady_images_per_s") for r in runs),
            first_step_s=Stat.of(timing(r, "first_step_s") for r in runs),
            best_run=best,
            acc_ci=stored_ci(best, "test_acc_ci"),
            auc_ci=stored_ci(best, "test_auc_ci"),
        )

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs if r.seed is not None]


def stored_ci(run: RunRecord, key: str) -> CI | None:
    """The bootstrap CI a run stored under ``key`` (``{"low", "high", ...}``), None when absent."""
    value = metric(run, key)
    if not isinstance(value, dict) or value.get("low") is None or value.get("high") is None:
        return None
    return CI(float(value["low"]), float(value["high"]), run.seed)
