"""benchmarks/gpu_check.py: its CPU mode end to end (so the GPU check cannot rot between loans), and the
rules that decide its exit code."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.slow  # every stage of the GPU check, for real: the full suite
def test_cpu_mode_runs_every_stage_and_writes_both_summaries(tmp_path):
    out = tmp_path / "out"
    done = _run("--cpu", "--frameworks", "torch,jax", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "skipped: no GPU" in done.stdout
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["failed"] == 0
    names = [c["name"] for c in summary["checks"]]
    # same answers and training for every framework and precision of the CPU plan
    for prefix in ("torch fp32", "torch bf16", "jax fp32"):
        assert f"{prefix} simple_cnn 28px logits" in names
        assert f"{prefix} simple_cnn 28px training" in names
    assert {"inference torch-eager simple_cnn 28px", "inference jax-jit simple_cnn 28px"} <= set(names)
    training = summary["results"]["training"]
    assert training["torch.fp32"]["simple_cnn_28"]["logits_rel_error"] == 0.0  # the reference itself
    assert 0 < training["jax.fp32"]["simple_cnn_28"]["logits_rel_error"] < 1e-4
    pipeline = summary["results"]["pipeline"]["pipeline.torch.simple_cnn.28"]["images_per_s"]
    assert set(pipeline) == {"medbench_pipeline", "on_device", "official_loop"}
    assert all(rate > 0 for rate in pipeline.values())
    assert {g["name"] for g in summary["goals"]} >= {"pipeline.torch.simple_cnn.28 pipeline vs on-device"}
    markdown = (out / "gpu_check.md").read_text()
    assert "checks passed" in markdown and "| torch fp32 simple_cnn 28px logits | ok |" in markdown


def test_without_a_gpu_it_asks_for_cpu_mode():
    done = _run("--out", "/nonexistent/never-written")
    assert done.returncode == 2
    assert "no GPU is visible" in done.stderr and "--cpu" in done.stderr


def test_an_unknown_framework_is_refused_before_any_work():
    done = _run("--cpu", "--frameworks", "torch,tensorflow")
    assert done.returncode == 2
    assert "tensorflow" in done.stderr


def test_the_default_frameworks_include_the_keras_backends_and_are_all_medbench_frameworks():
    """keras-jax and keras-torch are medbench frameworks now, so the default list runs them, none left out."""
    from medbench.frameworks import FRAMEWORKS

    default = tuple(gpu_check.PRECISIONS)
    assert {"keras-jax", "keras-torch"} <= set(default) <= set(FRAMEWORKS)


def _training_result(error: float, losses: list[float]) -> dict:
    return {"simple_cnn_28": {"logits_rel_error": error, "losses": losses, "images_per_s": 10.0}}


def test_wrong_logits_or_a_loss_that_does_not_fall_fail_the_run(tmp_path):
    plan = gpu_check.cpu_plan(("torch",))
    report = gpu_check.Report()
    falling = [2.0, 1.9, 1.8, 1.5, 1.2, 1.0]
    gpu_check.check_training(report, plan, "train.torch.fp32", _training_result(0.0, falling), "")
    assert not report.failed
    gpu_check.check_training(report, plan, "train.torch.bf16", _training_result(0.2, falling), "")
    gpu_check.check_training(
        report, plan, "train.torch.fp32", _training_result(0.0, [2.0, 2.0, 2.1, 2.2]), ""
    )
    gpu_check.check_training(report, plan, "train.torch.fp32", None, "exited with code 1: boom")
    failed = [c["name"] for c in report.failed]
    assert failed == [
        "torch bf16 simple_cnn 28px logits",
        "torch fp32 simple_cnn 28px training",
        "torch fp32",
    ]
    gpu_check.finish(report, tmp_path, started=0.0)
    assert json.loads((tmp_path / "gpu_check.json").read_text())["failed"] == 3
    assert "**FAIL**" in (tmp_path / "gpu_check.md").read_text()


def test_a_missed_goal_is_reported_but_is_no_failure():
    report = gpu_check.Report()
    result = {"images_per_s": {"medbench_pipeline": 80.0, "on_device": 100.0}}
    gpu_check.check_pipeline(report, "pipeline.torch.resnet18.224", result, "")
    assert report.goals[0]["met"] is False and report.goals[0]["value"] == pytest.approx(0.8)
    assert not report.failed


def test_relative_error_treats_nan_and_shape_mismatch_as_infinitely_wrong():
    ref = np.ones((2, 3), np.float32)
    assert gpu_check.rel_error(ref, ref) == 0.0
    assert gpu_check.rel_error(ref * 1.01, ref) == pytest.approx(0.01, rel=1e-5)
    assert gpu_check.rel_error(np.full((2, 3), np.nan), ref) == math.inf
    assert gpu_check.rel_error(np.ones((3, 2)), ref) == math.inf


def test_the_generated_data_load_through_medbench_and_are_learnable(tmp_path):
    path = gpu_check.write_dataset(tmp_path / "d.npz", train=256)
    data = gpu_check.load_data(path, tmp_path / "cache")
    images, labels = data["train"].images, data["train"].labels.reshape(-1)
    assert images.shape == (256, 28, 28, 3) and labels.max() < gpu_check.NUM_CLASSES
    # the class band is what tells the classes apart: every image of class k lights rows 3k..3k+2
    for k in np.unique(labels):
        band = images[labels == k, 3 * k : 3 * k + 3, :, k % 3]
        assert (band == 250).all()
