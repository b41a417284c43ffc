"""Every back-end's step breakdown and top-operations table (``profile.py``): what they report, and that
taking them between two training steps changes nothing the run computes.

Each framework runs in its own process (``_worker.py``'s ``profile`` task) on a tiny SimpleCNN: a trainer
profiled after its first step and its twin, never profiled, take the same three steps, once with shared
dropout masks and once with the framework's own random draws. Their losses and final weights must be
equal bit for bit: the breakdown runs steps of its own, which must leave no trace in weights, BatchNorm
statistics, optimizer state or random streams.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.frameworks.harness import run_job

FRAMEWORKS = [
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
    pytest.param("keras", marks=pytest.mark.keras),
    pytest.param("keras-jax", marks=[pytest.mark.keras_jax, pytest.mark.slow]),
    pytest.param("keras-torch", marks=[pytest.mark.keras_torch, pytest.mark.slow]),
]
BUILD = {"model": "simple_cnn", "num_classes": 3, "in_channels": 3, "image_size": 28, "options": {}}
PARTS = ("host_to_device_ms", "forward_ms", "backward_ms", "optimizer_ms")


@pytest.fixture(scope="module", params=FRAMEWORKS)
def profiled(request, tmp_path_factory):
    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.standard_normal((8, 28, 28, 3)).astype(np.float32),
        "labels": rng.integers(0, 3, 8).astype(np.int64),
    }
    task = {"id": "profile", "kind": "profile", "build": BUILD}
    folder = tmp_path_factory.mktemp(f"profile-{request.param}")
    return request.param, run_job(request.param, folder, [task], arrays)


@pytest.mark.parametrize("noise", ["shared", "native"])
def test_profiling_between_steps_changes_no_loss_and_no_weight(profiled, noise):
    framework, job = profiled
    res = job["profile"]
    assert res[f"{noise}/profiled/losses"] == res[f"{noise}/plain/losses"], framework
    profiled_state, plain = (
        job.state("profile", f"{noise}/profiled/"),
        job.state("profile", f"{noise}/plain/"),
    )
    assert profiled_state.keys() == plain.keys()
    changed = [k for k in plain if not np.array_equal(profiled_state[k], plain[k])]
    assert not changed, f"{framework}: profiling changed {changed[:5]}"


def test_the_breakdown_splits_the_step_and_says_how(profiled):
    framework, job = profiled
    b = job["profile"]["shared/breakdown"]
    assert b["repeats"] == 3 and framework.split("-")[-1] in b["method"].replace("tensorflow", "keras")
    assert b["step_ms"] > 0 and b["forward_ms"] > 0 and b["backward_ms"] > -0.5 * b["step_ms"]
    assert abs(b["step_ms"] - sum(b[p] for p in PARTS) - b["other_ms"]) < 1e-2
    assert set(b) == {"step_ms", "other_ms", "repeats", "method", *PARTS}


def test_the_top_operations_are_the_frameworks_own_costliest_ones(profiled):
    framework, job = profiled
    top = job["profile"]["shared/top"]
    ops = top["operations"]
    assert 1 <= len(ops) <= 10 and top["steps"] == 2
    times = [op["ms_per_step"] for op in ops]
    assert times == sorted(times, reverse=True) and times[0] > 0
    assert 0 < sum(op["share"] for op in ops) <= 1.0 + 1e-3
    # a convolution (forward or gradient) is among the costliest of a CNN, under the framework's own name
    assert any("conv" in (op["kind"] + op["name"]).lower() for op in ops), ops
