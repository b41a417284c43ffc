"""Every pair of frameworks in a set of stored runs, compared: accuracy metrics paired by seed and on the same
test images, speed as ratios with their spread. The data behind ``medbench compare``, the summary of
``medbench run`` and the report's first screen.

Runs pair up when they belong to the same comparison of the report (:func:`medbench.report.aggregate.compare`:
same dataset, image size, model, data source and config apart from framework and seed) and have the same seed.
Where a framework ran a seed twice, its latest run counts.

The verdicts of one call are one family of tests (:func:`medbench.stats.seeds.over_family`): every
(comparison, pair of frameworks, metric) with two paired seeds or more, the t tests and the TOSTs each
adjusted over theirs. The tests on the test images and the speed ratios are shown beside the verdicts, each
on its own p, and take no part in the family.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from medbench.report.aggregate import Comparison, compare
from medbench.report.pooling import is_number, metric, timing
from medbench.report.style import framework_sort_key
from medbench.results import RunRecord
from medbench.stats.images import DEFAULT_BOOTSTRAP, ImageTest
from medbench.stats.images import image_tests as tests_on_images
from medbench.stats.predictions import Predictions, load_predictions
from medbench.stats.pvalues import DEFAULT_CORRECTION
from medbench.stats.seeds import (
    DEFAULT_ALPHA,
    DEFAULT_MARGIN_POINTS,
    PairedSeeds,
    over_family,
    paired_over_seeds,
)
from medbench.stats.speed import Ratio, speed_ratio

# (name, key in a run's metrics, label); balanced ACC and macro-F1 are compared where the runs stored them.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("acc", "test_acc", "ACC"),
    ("auc", "test_auc", "AUC"),
    ("balanced_acc", "test_balanced_accuracy", "balanced ACC"),
    ("macro_f1", "test_macro_f1", "macro-F1"),
)
# (label, key in a run's timings, higher is better)
TRAIN_SPEED: tuple[tuple[str, str, bool], ...] = (
    ("train img/s", "steady_images_per_s", True),
    ("s/epoch", "train_s_per_epoch", False),
)


@dataclass
class MetricPair:
    """One metric of one pair of frameworks: over seeds, and per seed on the test images."""

    metric: str
    label: str
    mean_a: float
    mean_b: float
    seeds: PairedSeeds
    image_tests: list[tuple[int, ImageTest]] = field(default_factory=list)  # (seed, test)
    image_note: str = ""  # why some seeds have no image test

    @property
    def image_method(self) -> str:
        return self.image_tests[0][1].method if self.image_tests else ""

    @property
    def image_p_median(self) -> float | None:
        return statistics.median(t.p_value for _, t in self.image_tests) if self.image_tests else None

    def image_significant(self, alpha: float) -> int:
        return sum(t.p_value < alpha for _, t in self.image_tests)


@dataclass
class FrameworkPair:
    """Frameworks ``a`` and ``b`` in one comparison (differences are a - b)."""

    comparison: Comparison
    a: str
    b: str
    seeds: list[int]
    metrics: list[MetricPair]
    speed: dict[str, Ratio]
    same_machine: bool

    def metric(self, name: str) -> MetricPair | None:
        return next((m for m in self.metrics if m.metric == name), None)


def paired_runs(
    runs_a: Sequence[RunRecord], runs_b: Sequence[RunRecord]
) -> list[tuple[int, RunRecord, RunRecord]]:
    """(seed, run of a, run of b) for every seed both ran, the latest run of a seed counting."""

    def latest(runs: Sequence[RunRecord]) -> dict[int, RunRecord]:
        by_seed: dict[int, RunRecord] = {}
        for r in sorted(runs, key=lambda r: r.created_at):
            if r.seed is not None:
                by_seed[r.seed] = r
        return by_seed

    a, b = latest(runs_a), latest(runs_b)
    return [(s, a[s], b[s]) for s in sorted(set(a) & set(b))]


class _SeedTests:
    """The image tests of every metric for one pair of runs, computed once (the bootstrap shares its
    resamples between metrics) and kept; predictions are loaded once per run."""

    def __init__(self, n_boot: int) -> None:
        self.n_boot = n_boot
        self._loaded: dict[str, tuple[Predictions | None, str]] = {}
        self._tests: dict[tuple[str, str], dict[str, ImageTest | str] | str] = {}

    def _load(self, run: RunRecord) -> tuple[Predictions | None, str]:
        if run.run_id not in self._loaded:
            self._loaded[run.run_id] = load_predictions(run)
        return self._loaded[run.run_id]

    def __call__(self, seed: int, ra: RunRecord, rb: RunRecord) -> dict[str, ImageTest | str] | str:
        """Every metric's test (or why it could not run), or why no test could run for this pair."""
        key = (ra.run_id, rb.run_id)
        if key not in self._tests:
            (pa, why_a), (pb, why_b) = self._load(ra), self._load(rb)
            why = why_a or why_b or (_same_images(pa, pb) if pa is not None and pb is not None else "")
            names = tuple(name for name, _, _ in METRICS)
            self._tests[key] = why or tests_on_images(
                names, pa.labels, pa.scores, pb.scores, pa.task, n_boot=self.n_boot, seed=seed
            )
        return self._tests[key]


def _same_images(pa: Predictions, pb: Predictions) -> str:
    if pa.task != pb.task or pa.scores.shape != pb.scores.shape or not np.array_equal(pa.labels, pb.labels):
        return "the two runs' test sets differ (labels, task or shape)"
    return ""


def _image_tests(
    name: str, pairs: list[tuple[int, RunRecord, RunRecord]], tests_of: _SeedTests
) -> tuple[list[tuple[int, ImageTest]], str]:
    tests, problems = [], []
    for seed, ra, rb in pairs:
        found = tests_of(seed, ra, rb)
        result = found if isinstance(found, str) else found.get(name, "no test for this metric")
        if isinstance(result, str):
            problems.append(f"seed {seed}: {result}")
        else:
            tests.append((seed, result))
    return tests, "; ".join(dict.fromkeys(problems))


def _metric_pair(
    name: str,
    key: str,
    label: str,
    pairs,
    tests_of: _SeedTests,
    *,
    margin: float,
    alpha: float,
    with_images: bool,
) -> MetricPair | None:
    values = [(metric(ra, key), metric(rb, key)) for _, ra, rb in pairs]
    kept = [
        (s, x, y) for (s, _, _), (x, y) in zip(pairs, values, strict=True) if is_number(x) and is_number(y)
    ]
    if not kept:
        return None
    a, b = [x for _, x, _ in kept], [y for _, _, y in kept]
    used = {s for s, _, _ in kept}
    tests, note = (
        _image_tests(name, [p for p in pairs if p[0] in used], tests_of) if with_images else ([], "")
    )
    return MetricPair(
        metric=name,
        label=label,
        mean_a=float(np.mean(a)),
        mean_b=float(np.mean(b)),
        seeds=paired_over_seeds(a, b, margin=margin, alpha=alpha),
        image_tests=tests,
        image_note=note,
    )


def compare_frameworks(
    runs: Sequence[RunRecord],
    *,
    margin_points: float = DEFAULT_MARGIN_POINTS,
    alpha: float = DEFAULT_ALPHA,
    n_boot: int = DEFAULT_BOOTSTRAP,
    image_tests: bool = True,
    comparisons: Sequence[Comparison] | None = None,
    metrics: Sequence[str] = (),
    correction: str = DEFAULT_CORRECTION,
) -> list[FrameworkPair]:
    """Every pair of frameworks in every comparison of ``runs`` (completed training rows are used).

    Args:
        margin_points: the equivalence margin in percentage points, for every metric (ACC, AUC, ...).
        alpha: level of every test; intervals are (1 - alpha).
        n_boot: resamples of the paired bootstrap (balanced ACC, macro-F1, multi-label ACC).
        image_tests: also test each seed's pair on the test images (needs the stored predictions).
        comparisons: the groups, if the caller has them already (the report does).
        metrics: only these of :data:`METRICS` (``acc``, ``auc``, ...); empty: all. Only they are tested,
            so only they make the family.
        correction: how the verdicts' p-values are adjusted over the family (``holm``, ``none``).

    Raises:
        ValueError: for an unknown correction.
    """
    tests_of = _SeedTests(n_boot)
    chosen = [m for m in METRICS if not metrics or m[0] in metrics]
    out = []
    for c in compare(runs) if comparisons is None else comparisons:
        results = sorted(c.frameworks, key=lambda f: framework_sort_key(f.framework))
        for fa, fb in combinations(results, 2):
            pairs = paired_runs(fa.runs, fb.runs)
            metrics_here = [
                m
                for name, key, label in chosen
                if (
                    m := _metric_pair(
                        name,
                        key,
                        label,
                        pairs,
                        tests_of,
                        margin=margin_points / 100,
                        alpha=alpha,
                        with_images=image_tests,
                    )
                )
            ]
            speed = {
                label: r
                for label, key, higher in TRAIN_SPEED
                if (
                    r := speed_ratio(
                        [timing(x, key) for x in fa.runs],
                        [timing(x, key) for x in fb.runs],
                        higher_is_better=higher,
                        alpha=alpha,
                    )
                )
            }
            out.append(
                FrameworkPair(
                    c,
                    fa.framework,
                    fb.framework,
                    [s for s, _, _ in pairs],
                    metrics_here,
                    speed,
                    c.machines == 1,
                )
            )
    _decide_together(out, correction)
    return out


def _decide_together(pairs: Sequence[FrameworkPair], correction: str) -> None:
    """Replaces every metric's verdict by the one over the family of all of them."""
    family = [m for p in pairs for m in p.metrics]
    for m, decided in zip(family, over_family([m.seeds for m in family], correction), strict=True):
        m.seeds = decided
