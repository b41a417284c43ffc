"""The training probe: its job, the result of a real (tiny) PyTorch probe in a fresh process, its failures."""

from __future__ import annotations

import pytest

from medbench.bench.plan import Measurement
from medbench.bench.train_probe import KIND, probe_config, probe_job, run_probe, run_probe_job
from medbench.errors import ConfigError
from medbench.results import ResultsStore

TINY = Measurement(
    min_count=3, min_duration_s=0.0, max_duration_s=5.0, warmup_min=1, warmup_max_s=1.0, stable_window=1
)


def test_a_probe_config_is_a_validated_run_config():
    config = probe_config("torch", size=28, batch_size=16, runtime={"compile": True})
    assert (config.recipe.batch_size, config.runtime.compile, config.data.size) == (16, True, 28)
    with pytest.raises(ConfigError, match="Known settings"):
        probe_config("torch", runtime={"settings": {"fast": True}})


def test_a_probe_job_carries_what_the_worker_and_the_runner_need():
    config = probe_config("jax", "resnet18", size=64, batch_size=32)
    job = probe_job(config, mode="loop", measurement=TINY, steps=5, fma_peak_flops_per_s=1e12)
    assert job["kind"] == KIND == "train_probe" and job["mode"] == "loop" and job["steps"] == 5
    assert job["start"]["kind"] == KIND and job["start"]["framework"] == "jax" and job["start"]["size"] == 64
    assert job["measurement"]["min_count"] == 3 and job["config"] == config.to_dict()


def test_a_probe_that_fails_records_why(tmp_path):
    job = probe_job(probe_config("torch"), measurement=TINY)
    job["config"]["model"] = "vgg"  # the child validates again: a failure, not a crash
    job.update(store=str(tmp_path / "s.sqlite"), run_dir=str(tmp_path / "run"))
    assert run_probe_job(job) == 1
    row = ResultsStore(tmp_path / "s.sqlite").get_run(job["run_id"])
    assert row.status == "failed" and "vgg" in row.failure_reason and "traceback" in row.metrics


@pytest.mark.torch
def test_a_bare_probe_times_the_trainer_steps_in_a_fresh_process():
    config = probe_config("torch", size=28, batch_size=16, runtime={"threads": 1})
    result = run_probe(config, measurement=TINY, timeout_s=300)
    assert result.ok, result.reason
    m = result.metrics
    assert result.mode == m["mode"] == "bare" and result.images_per_s == m["images_per_s"] > 0
    assert m["step_count"] >= 3 and m["step_warmup_count"] >= 1 and m["first_step_s"] > 0
    assert m["images_per_s"] == pytest.approx(16 * 1e3 / m["step_mean_ms"])
    assert m["applied"]["threads"] == 1 and m["applied"]["compile"] is False
    assert m["effective_flops_per_s"] == pytest.approx(m["flops_per_image"] * 3 * m["images_per_s"])
    assert m["first_loss"] > 0 and m["last_loss"] > 0


@pytest.mark.torch
def test_a_loop_probe_runs_medbench_training_loop():
    config = probe_config("torch", size=28, batch_size=16, runtime={"threads": 1})
    result = run_probe(config, mode="loop", steps=4, timeout_s=300)
    assert result.ok, result.reason
    m = result.metrics
    assert m["mode"] == "loop" and m["steps"] == 4 and m["images_per_s"] > 0
    timings = m["loop_timings"]
    # the loop's clock after the first step: three steps of 16 images
    assert m["images_per_s"] == pytest.approx(48 / (timings["train_s"] - timings["first_step_s"]))
