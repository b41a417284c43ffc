"""Comparisons of the report (report.aggregate): one per subject, its ACC criterion, its fastest
framework and machines, its unfinished runs; checked against the fixture's rows worked out by hand."""

from __future__ import annotations

import pytest

from medbench.report.aggregate import unfinished_runs


def test_one_comparison_per_dataset_size_and_source(comparisons):
    assert set(comparisons) == {("pathmnist", 28), ("pathmnist", 64), ("bloodmnist", 28)}
    path28 = comparisons[("pathmnist", 28)]
    assert [f.framework for f in path28.frameworks] == ["torch", "jax", "keras"]
    assert all(len(f.runs) == 2 and f.seeds == [0, 1] for f in path28.frameworks)


def test_the_1_5_point_criterion_holds_at_its_edge_and_fails_beyond(comparisons):
    at_edge = comparisons[("pathmnist", 28)]
    assert at_edge.acc_spread_points == pytest.approx(1.5)
    assert at_edge.within_criterion is True  # 0.91 - 0.895 is 1.5000000000000013 points in floats
    beyond = comparisons[("pathmnist", 64)]
    assert beyond.acc_spread_points == pytest.approx(3.5) and beyond.within_criterion is False
    single = comparisons[("bloodmnist", 28)]
    assert single.acc_spread_points is None and single.within_criterion is None


def test_fastest_and_machines(comparisons):
    c = comparisons[("pathmnist", 28)]
    assert c.fastest.framework == "jax"
    assert c.machines == 1


def test_failed_runs_are_attached_to_their_comparison_and_listed(runs, comparisons):
    failed64 = comparisons[("pathmnist", 64)].failed
    assert [(r.framework, r.seed, r.status) for r in failed64] == [("keras", 2, "failed")]
    interrupted28 = comparisons[("pathmnist", 28)].failed
    assert [(r.framework, r.status) for r in interrupted28] == [("jax", "interrupted")]
    assert {r.status for r in unfinished_runs(runs)} == {"failed", "interrupted"}
    assert len(unfinished_runs(runs)) == 3  # two training runs and the benchmark engine with wrong answers
