"""``medbench models`` as a user runs it: a real process, each framework measured in its own child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def medbench(*args: str, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if home is not None:  # a fresh cache of measurements
        env["MEDBENCH_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", "models", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.torch
def test_json_gives_parameters_and_flops_per_model(tmp_path):
    args = ("--framework", "torch", "--model", "simple_cnn", "--channels", "1", "--json")
    flops = 2 * (28 * 28 * 32 * 9 + 14 * 14 * 64 * 32 * 9 + 7 * 7 * 128 * 64 * 9 + 128 * 128 + 128 * 9)
    # measured by torch the first time, read from the cache the second: the same figures both times
    for cached in ([], ["simple_cnn"]):
        result = medbench(*args, home=tmp_path)
        assert result.returncode == 0, result.stderr
        torch_result = json.loads(result.stdout)["torch"]
        assert "torch" in torch_result["versions"] and torch_result["cached"] == cached
        entry = torch_result["models"]["simple_cnn"]
        assert entry["params"] == 110_569  # 1 channel, 9 classes (see test_equivalence)
        assert entry["flops"] == flops


@pytest.mark.torch
@pytest.mark.keras
@pytest.mark.parametrize(
    "frameworks",
    [
        pytest.param(("torch", "keras"), id="torch-keras"),
        # a process per framework; each back-end's own count is also checked in test_equivalence
        pytest.param(
            ("torch", "keras", "keras-jax", "keras-torch"),
            id="every-keras-backend",
            marks=[pytest.mark.keras_jax, pytest.mark.keras_torch, pytest.mark.slow],
        ),
    ],
)
def test_table_lists_each_framework_side_by_side(frameworks, tmp_path):
    """The Keras backends count FLOPs on their own traces (TensorFlow's graph, the jaxpr, torch's counter)."""
    flags = [arg for fw in frameworks for arg in ("-f", fw)]
    result = medbench(*flags, "-m", "resnet18", "--size", "28", "--classes", "9", home=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("resnet18"))
    assert row.count("11,173,449") == len(frameworks)  # the same count measured by every framework
    assert row.count("0.913") == len(frameworks)  # GFLOPs, 2 x MACs
    assert "error" not in row


def test_mistakes_are_one_line_and_exit_2():
    unknown = medbench("--framework", "mxnet")
    assert unknown.returncode == 2 and "Unknown framework 'mxnet'" in unknown.stderr
    no_match = medbench("--model", "vgg*")
    assert no_match.returncode == 2 and "No registered model matches" in no_match.stderr
