"""One measurement cell with the framework-free test engine: the same-answers gate, the row it writes."""

from __future__ import annotations

import time

from medbench.bench.cell import run_bench_job
from medbench.bench.summary import outcome_of
from medbench.results import ResultsStore
from tests.bench import fake_engine
from tests.bench.conftest import make_job


def _row(store_path, job):
    return ResultsStore(store_path).get_run(job["run_id"])


def test_an_engine_with_the_reference_weights_is_timed_at_every_batch_size(tmp_path, cell_files):
    store = tmp_path / "results.sqlite"
    job = make_job(cell_files, store, spawned_at=time.time())
    assert run_bench_job(job) == 0
    row = _row(store, job)
    m = row.metrics
    assert row.status == "completed" and row.kind == "bench" and outcome_of(row) == "ok"
    assert m["check_ok"] is True and m["check_max_abs_diff"] < 1e-5
    assert m["latency_count"] >= 3 and m["latency_p50_ms"] > 0  # single stream: batch 1
    assert m["b4_latency_count"] >= 3 and m["b4_images_per_s"] > 0
    assert m["best_batch_size"] in (1, 4)
    assert m["cold_start_s"] >= m["load_weights_s"] >= 0
    achieved = m["flops_per_image"] * m["best_images_per_s"]
    assert m["achieved_flops_per_s"] == achieved
    assert m["fraction_of_best_kernel"] == achieved / 1e9 and m["fraction_of_fma_peak"] == achieved / 4e9
    assert m["peak_rss_bytes"] > 0
    assert row.environment["engine"]["name"] == "fake-linear"


def test_an_engine_with_wrong_weights_is_reported_wrong_and_not_timed(tmp_path, cell_files):
    store = tmp_path / "results.sqlite"
    wrong = dict(
        cell_files, weights=fake_engine.perturb_weights(cell_files["weights"], tmp_path / "bad.safetensors")
    )
    job = make_job(wrong, store)
    assert run_bench_job(job) == 0  # recorded: a wrong engine is a finding, not a crash
    row = _row(store, job)
    assert row.status == "failed" and outcome_of(row) == "wrong"
    assert row.failure_reason.startswith("wrong answers: max |diff|")
    assert row.metrics["check_ok"] is False and row.metrics["check_max_abs_diff"] > 1e-3
    assert not any(key.startswith(("latency_", "b1_latency", "best_")) for key in row.metrics)


def test_an_engine_that_fails_to_start_is_a_failed_row_with_its_reason(tmp_path, cell_files):
    store = tmp_path / "results.sqlite"
    job = make_job(cell_files, store, entry="prepare_broken")
    assert run_bench_job(job) == 1
    row = _row(store, job)
    assert row.status == "failed" and outcome_of(row) == "failed"
    assert "RuntimeError: this engine always fails to start" in row.failure_reason
    assert "prepare_broken" in row.metrics["traceback"]  # for whoever debugs it later


def test_a_cell_runs_in_a_fresh_worker_process_through_the_runner(tmp_path, cell_files):
    from medbench.orchestration.runner import run_job

    job = make_job(cell_files, tmp_path / "results.sqlite")
    job["run_dir"] = str(tmp_path / "logs")  # the quiet worker's log goes here, not into /tmp
    job["spawned_at"] = time.time()
    row = run_job(job, store_path=tmp_path / "results.sqlite", quiet=True)
    assert row.status == "completed", row.failure_reason
    assert row.pid != __import__("os").getpid()
    # measured from the parent's spawn: the interpreter start is part of the cold start
    assert 0 < row.metrics["interpreter_start_s"] < row.metrics["cold_start_s"]
    assert row.metrics["cold_start_from"] == "parent spawn"
    assert row.metrics["worker_start_s"] > 0
    assert len(list((tmp_path / "logs").glob("worker-*.log"))) == 1
