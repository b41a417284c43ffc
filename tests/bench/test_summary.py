"""Repeats -> one summary per cell: medians, spreads, statuses."""

from __future__ import annotations

import pytest

from medbench.bench.summary import aggregate, format_spread, outcome_of, table_rows
from medbench.timing import RepeatSummary
from tests.bench.rows import row


def test_repeats_become_a_median_with_its_range():
    rows = [row("jax-jit", 28, p50=p, cold=c) for p, c in ((1.0, 3.0), (3.0, 1.0), (2.0, 2.5))]
    (cell,) = aggregate(rows)
    assert cell.status == "ok" and cell.runs == cell.ok_runs == 3
    assert (cell.latency_p50_ms.median, cell.latency_p50_ms.min, cell.latency_p50_ms.max) == (2.0, 1.0, 3.0)
    assert cell.cold_start_s.median == 2.5
    assert sorted(cell.throughput) == [1, 64]
    batch, best = cell.best_throughput
    assert batch == 64 and best.median == pytest.approx(1000.0)  # 2000 / median of (1, 3, 2)
    assert cell.achieved_flops_per_s == pytest.approx(1e6 * 1000.0)
    assert cell.fraction_of_best_kernel == pytest.approx(1e6 * 1000.0 / 1e10)
    assert cell.fraction_of_fma_peak == pytest.approx(1e6 * 1000.0 / 4e10)


def test_the_table_shows_both_percentages_each_labelled():
    # 2 GFLOP per image x 100 img/s at batch 64 = 200 GFLOP/s, of 500 (FMA peak) and of 250 (best kernel)
    (table,) = table_rows(
        aggregate(
            [row("torch-eager", 28, throughput={1: 50.0, 64: 100.0}, flops=2e9, peak=2.5e11, fma_peak=5e11)]
        )
    )
    assert table["% of FMA peak"] == "40.0" and table["% of best kernel"] == "80.0"
    assert "% of peak" not in table


def test_an_old_row_with_one_peak_reads_as_a_percentage_of_the_best_kernel():
    old = row("torch-eager", 28, throughput={1: 50.0, 64: 100.0}, flops=2e9, peak=4e11, legacy_peak=True)
    assert "best_kernel_flops_per_s" not in old["metrics"]  # as such rows were stored
    (cell,) = aggregate([old])
    assert cell.best_kernel_flops_per_s == 4e11 and cell.fma_peak_flops_per_s is None
    (table,) = table_rows([cell])
    assert table["% of best kernel"] == "50.0" and table["% of FMA peak"] == "-"


def test_cells_are_grouped_by_model_engine_and_size_in_plan_order():
    rows = [row(e, s) for s in (64, 28) for e in ("torch-eager", "jax-jit")]
    rows.append(row("torch-eager", 28, model="resnet18"))
    keys = [(c.model, c.engine, c.size) for c in aggregate(rows)]
    assert keys == [
        ("simple_cnn", "torch-eager", 28),
        ("simple_cnn", "torch-eager", 64),
        ("simple_cnn", "jax-jit", 28),
        ("simple_cnn", "jax-jit", 64),
        ("resnet18", "torch-eager", 28),
    ]


def test_one_wrong_repeat_makes_the_cell_wrong():
    rows = [
        row("onnx-keras", 28),
        row("onnx-keras", 28, outcome="wrong", reason="wrong answers: max |diff| 0.4"),
    ]
    (cell,) = aggregate(rows)
    assert cell.status == "wrong" and "0.4" in cell.reason and cell.check_max_abs_diff == 0.4


def test_failed_repeats_are_named_but_the_rest_still_counts():
    rows = [row("torch-compile", 28, p50=1.0), row("torch-compile", 28, outcome="failed", reason="timed out")]
    (cell,) = aggregate(rows)
    assert cell.status == "ok" and cell.ok_runs == 1 and "1 of 2 repeats failed: timed out" in cell.reason
    (dead,) = aggregate([row("keras-torch-eager", 28, outcome="failed", reason="KeyError: x")])
    assert dead.status == "failed" and dead.reason == "KeyError: x" and dead.latency_p50_ms is None


def test_a_worker_that_died_without_a_verdict_counts_as_failed():
    crashed = {
        **row("jax-jit", 28),
        "status": "failed",
        "metrics": None,
        "failure_reason": "worker killed by SIGKILL",
    }
    assert outcome_of(crashed) == "failed"
    assert aggregate([crashed])[0].status == "failed"


def test_running_and_other_kinds_are_ignored():
    assert (
        aggregate([{**row("jax-jit", 28), "status": "running"}, {**row("jax-jit", 28), "kind": "train"}])
        == []
    )


def test_formatting_shows_the_spread_only_with_several_repeats():
    assert format_spread(RepeatSummary.from_values([1.234])) == "1.23"
    assert format_spread(RepeatSummary.from_values([1.0, 1.2, 1.5])) == "1.2 (1-1.5)"
    assert format_spread(None) == "-"
    assert format_spread(RepeatSummary.from_values([12345.6, 23456.0])) == "17,901 (12,346-23,456)"
    (table,) = table_rows(aggregate([row("jax-jit", 28, p50=2.0)] * 3))
    assert table["p50 ms (range)"] == "2 (2-2)" and table["best img/s (batch)"] == "1,000 (1,000-1,000) (b64)"
    assert table["status"] == "ok"
