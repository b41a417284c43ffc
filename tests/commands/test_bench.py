"""``medbench bench`` as a user runs it: real processes, a temporary store, figures on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medbench.bench.session import PEAK_KIND
from medbench.bench.summary import outcome_of
from medbench.results import ResultsStore

# Short measurements: these tests check what is recorded, never how fast anything is.
SHORT = ("--quick", "--threads", "1", "--min-count", "2", "--min-duration", "0")


def medbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_list_engines_names_every_engine_and_what_it_measures():
    result = medbench("bench", "--list-engines")
    assert result.returncode == 0, result.stderr
    for name in ("torch-eager", "torch-compile", "jax-jit", "keras-tf-xla", "keras-jax-jit", "onnx-keras"):
        assert name in result.stdout
    assert "tf.function(jit_compile=True)" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--engine", "torch-eagr"), "Unknown engine 'torch-eagr'. Did you mean torch-eager"),
        (("--size", "100"), "Image size 100 is not one MedMNIST publishes"),
        (("--model", "resnet7"), "Unknown model 'resnet7'"),
    ],
)
def test_mistakes_are_one_line_and_exit_code_2(args, expected, tmp_path):
    result = medbench("bench", *args, "--store", str(tmp_path / "r.sqlite"))
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def _check_session(store_path, engines):
    store = ResultsStore(store_path)
    rows = store.list_runs(kind="bench")
    assert sorted(r.config["engine"] for r in rows) == sorted(engines)
    for r in rows:
        assert r.status == "completed" and outcome_of(r) == "ok", (r.config["engine"], r.failure_reason)
        assert r.size == 28 and r.experiment == rows[0].experiment and r.config["threads"] == 1
        m = r.metrics
        assert m["check_max_abs_diff"] <= 1e-3 and m["latency_count"] >= 2 and m["b8_images_per_s"] > 0
        assert m["cold_start_s"] > m["import_s"] > 0 and m["interpreter_start_s"] > 0
        assert m["flops_per_image"] > 0 and m["fraction_of_best_kernel"] > 0 and m["fraction_of_fma_peak"] > 0
        assert m["fraction_of_fma_peak"] < 1.0  # nothing beats the theoretical peak
    (peak,) = store.list_runs(kind=PEAK_KIND)
    assert peak.status == "completed" and peak.metrics["best_kernel_flops_per_s"] > 0
    assert peak.metrics["fma_peak_flops_per_s"] > 0 and peak.metrics["fma_peak"]["cores"] == 1
    return rows


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.jax
def test_quick_bench_with_torch_jax_and_onnx_writes_rows_table_and_plots(tmp_path):
    engines = ["torch-eager", "jax-jit", "onnx-torch"]
    store, plots = tmp_path / "results.sqlite", tmp_path / "plots"
    args = [a for e in engines for a in ("--engine", e)]
    result = medbench("bench", *SHORT, *args, "--store", str(store), "--plot", str(plots))
    assert result.returncode == 0, result.stderr[-3000:]
    _check_session(store, engines)
    assert "inference: median over repeats" in result.stdout
    assert "FMA peak" in result.stdout and "best kernel" in result.stdout  # what the percentages divide by
    assert all(e in result.stdout for e in engines)
    # --quick measures one size: no latency-vs-size line (a plot only when it has something to show)
    assert sorted(p.name for p in plots.iterdir()) == [
        "simple_cnn_cold_start.png",
        "simple_cnn_throughput_vs_batch.png",
    ]
    report = medbench("bench-report", "--store", str(store))
    assert report.returncode == 0 and "onnx-torch" in report.stdout


@pytest.mark.slow
@pytest.mark.keras
def test_quick_bench_with_keras_on_xla_and_through_onnx(tmp_path):
    engines = ["keras-tf-xla", "onnx-keras"]
    store = tmp_path / "results.sqlite"
    args = [a for e in engines for a in ("--engine", e)]
    result = medbench("bench", *SHORT, *args, "--store", str(store))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _check_session(store, engines)
    onnx = next(r for r in rows if r.config["engine"] == "onnx-keras")
    assert onnx.environment["engine"]["runtime"]["providers"] == ["CPUExecutionProvider"]


def _store_with_rows(path):
    from tests.bench.rows import row

    store = ResultsStore(path)
    for size in (28, 64):
        for engine, p50 in (("torch-eager", 1.0), ("jax-jit", 0.5)):
            r = row(engine, size, p50=p50 * size / 28, experiment="bench-test")
            columns = {k: r[k] for k in ("kind", "config", "framework", "model", "size", "experiment")}
            run_id = store.start_run(**columns)
            store.finish_run(run_id, metrics=r["metrics"])
    return store


def test_bench_report_reads_a_stored_session_and_draws_it(tmp_path):
    _store_with_rows(tmp_path / "r.sqlite")
    result = medbench(
        "bench-report", "--store", str(tmp_path / "r.sqlite"), "--plot", str(tmp_path / "plots")
    )
    assert result.returncode == 0, result.stderr
    assert "torch-eager" in result.stdout and "jax-jit" in result.stdout
    assert "scaling with image size" in result.stdout  # two sizes: a fit per engine
    assert len(list((tmp_path / "plots").glob("*.png"))) == 3
    missing = medbench("bench-report", "--store", str(tmp_path / "r.sqlite"), "--session", "nope")
    assert missing.returncode == 2 and "No benchmark session 'nope'" in missing.stderr


def test_bench_report_prints_both_percentages_and_what_they_divide_by(tmp_path):
    store = _store_with_rows(tmp_path / "r.sqlite")
    fma = {"method": "measured", "cores": 2, "clock_ghz": 4.1, "vector": "avx512", "fma_units": 2}
    metrics = {
        "fma_peak_flops_per_s": 5.248e11,
        "fma_peak": {**fma, "lanes_per_cycle": 32},
        "best_kernel_flops_per_s": 2.5e11,
        "best_kernel_source": "torch_conv3x3",
        "threads": 2,
    }
    peak_id = store.start_run(kind=PEAK_KIND, config={}, framework="numpy", experiment="bench-test")
    store.finish_run(peak_id, metrics=metrics)
    result = medbench("bench-report", "--store", str(store.path))
    assert result.returncode == 0, result.stderr
    assert "% of FMA peak" in result.stdout and "% of best kernel" in result.stdout
    assert "FMA peak 525 GFLOP/s = 2 cores x 4.10 GHz (measured)" in result.stdout
    assert "best kernel 250.0 GFLOP/s: torch conv3x3" in result.stdout
    data = json.loads(medbench("bench-report", "--store", str(store.path), "--format", "json").stdout)
    # rows.row: 1e6 FLOP per image x 2000 img/s (batch 64, p50 1 ms) = 2 GFLOP/s
    torch28 = next(r for r in data["inference"] if (r["engine"], r["size"]) == ("torch-eager", 28))
    assert torch28["fraction_of_best_kernel_pct"] == pytest.approx(100 * 2e9 / 1e10)
    assert torch28["fraction_of_fma_peak_pct"] == pytest.approx(100 * 2e9 / 4e10)
