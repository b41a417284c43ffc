"""Grouping stored runs into what the report compares: framework-free, numbers only.

A *comparison* is one (dataset, image size, model, recipe variant, data source); inside it every framework's
completed training runs are pooled over seeds into mean, sample standard deviation, n, min and max. Runs are
grouped by their stored config, not by experiment name, so the same recipe run twice is one group and two
recipes that share a name are never averaged together. An experiment's variants (``config.tags["variant"]``,
e.g. the configurations of a fine-tuning study) differ in their config, so each is a comparison of its own,
labelled by its name.

The pieces live beside this module: the key in :mod:`~medbench.report.grouping`, the pooling in
:mod:`~medbench.report.pooling`, the variant labels and recipe line in :mod:`~medbench.report.recipes`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medbench.report.baseline import Baseline, comparison_baseline
from medbench.report.environments import machine_signature
from medbench.report.grouping import GroupKey, group_key
from medbench.report.pooling import FrameworkResult
from medbench.report.recipes import recipe_summary, variant_labels
from medbench.report.runtime_variant import framework_label
from medbench.report.style import framework_sort_key
from medbench.results import RunRecord

# The criterion: frameworks agree when their mean test ACCs lie within this many points.
SPREAD_CRITERION_POINTS = 1.5
UNFINISHED: tuple[str, ...] = ("failed", "interrupted", "running")


@dataclass
class Comparison:
    """The frameworks side by side for one (dataset, size, model, variant, data source)."""

    key: GroupKey
    frameworks: list[FrameworkResult]
    recipe: str = ""
    variant_label: str = ""  # what sets this variant apart from others of the same dataset/size/model
    variant_settings: str = ""  # the config fields behind a variant named by its tag, when they differ
    machines: int = 1  # distinct hardware the runs used: timings compare only when this is 1
    failed: list[RunRecord] = field(default_factory=list)
    baseline: Baseline | None = None  # always predicting the majority class (None: not enough stored)

    @property
    def acc_spread_points(self) -> float | None:
        """Largest minus smallest mean test ACC across frameworks, in percentage points (None with one)."""
        means = [f.test_acc.mean for f in self.frameworks if f.test_acc is not None]
        return (max(means) - min(means)) * 100 if len(means) >= 2 else None

    @property
    def within_criterion(self) -> bool | None:
        spread = self.acc_spread_points
        # A tolerance for float rounding: 1.5 points computed from fractions must count as within 1.5.
        return None if spread is None else spread <= SPREAD_CRITERION_POINTS + 1e-9

    @property
    def fastest(self) -> FrameworkResult | None:
        timed = [(f.s_per_epoch.mean, i) for i, f in enumerate(self.frameworks) if f.s_per_epoch is not None]
        return self.frameworks[min(timed)[1]] if timed else None

    def result(self, framework: str) -> FrameworkResult | None:
        return next((f for f in self.frameworks if f.framework == framework), None)

    @property
    def title(self) -> str:
        k = self.key
        parts = [f"{k.dataset} {k.size_label} px", k.model, self.variant_label]
        parts.append("" if k.source.is_official or k.source.kind == "unknown" else f"{k.source.kind} data")
        return " · ".join(p for p in parts if p)


def compare(runs: Sequence[RunRecord]) -> list[Comparison]:
    """Every comparison in ``runs`` (completed ``train`` rows), sorted by dataset, model, size, variant.

    Failed and interrupted training runs are attached to the comparison they belong to (when it exists), so a
    framework that crashed is visible beside the ones that finished rather than silently absent.
    """
    completed = [r for r in runs if r.kind == "train" and r.status == "completed"]
    grouped: dict[GroupKey, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    configs: dict[GroupKey, dict[str, Any]] = {}
    for run in completed:
        key = group_key(run)
        grouped[key][framework_label(run)].append(run)  # "torch" beside "torch (tuned: compile)"
        configs.setdefault(key, run.config)
    labels = variant_labels(list(grouped), configs)
    failed_by_variant: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.kind == "train" and run.status in UNFINISHED:
            failed_by_variant[group_key(run).without_source].append(run)
    comparisons = []
    for key, by_framework in grouped.items():
        results = [FrameworkResult.of(fw, rs) for fw, rs in by_framework.items()]
        results.sort(key=lambda f: framework_sort_key(f.framework))
        all_runs = [r for f in results for r in f.runs]
        comparisons.append(
            Comparison(
                key=key,
                frameworks=results,
                recipe=recipe_summary(configs[key]),
                variant_label=labels[key][0],
                variant_settings=labels[key][1],
                machines=len({machine_signature(r)[:2] for r in all_runs}),
                failed=failed_by_variant.get(key.without_source, []),
                baseline=comparison_baseline(all_runs),
            )
        )
    comparisons.sort(
        key=lambda c: (c.key.dataset, c.key.model, c.key.input_size, c.key.size, c.variant_label)
    )
    return comparisons


def unfinished_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Failed, interrupted and still-running rows of any kind, oldest first."""
    return [r for r in runs if r.status in UNFINISHED]
