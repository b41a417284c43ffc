"""Tests of medbench.environment: keys and types, JSON round trip, git commit, and soft failures."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import medbench
from medbench import environment
from medbench.environment import capture_environment


@pytest.fixture(scope="module")
def env() -> dict:
    return capture_environment()


def test_keys_and_types(env):
    assert isinstance(env["hostname"], str) and env["hostname"]
    assert env["os"]["system"]
    assert env["python"]["version"].count(".") == 2
    cpu = env["cpu"]
    assert isinstance(cpu["logical_cores"], int) and cpu["logical_cores"] >= 1
    assert cpu["physical_cores"] is None or 1 <= cpu["physical_cores"] <= cpu["logical_cores"]
    assert 1 <= cpu["usable_cores"] <= cpu["logical_cores"]
    assert cpu["model"] is None or isinstance(cpu["model"], str)
    assert isinstance(env["memory_total_bytes"], int) and env["memory_total_bytes"] > 2**20
    assert isinstance(env["gpus"], list)
    assert env["medbench"]["version"] == medbench.__version__
    assert env["packages"]["numpy"] is not None
    assert set(env["packages"]) >= {"numpy", "scikit-learn"}
    assert isinstance(env["env"], dict)


def test_json_round_trip(env):
    assert json.loads(json.dumps(env)) == env


def test_extra_is_merged_and_made_json_ready():
    env = capture_environment({"framework": {"name": "fake", "threads": (4, 1), "device": Path("/dev/x")}})
    assert env["framework"] == {"name": "fake", "threads": [4, 1], "device": "/dev/x"}
    assert json.loads(json.dumps(env)) == env


def test_git_commit_matches_the_checkout(env):
    package_dir = Path(medbench.__file__).resolve().parent
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("medbench is not imported from a git checkout")
    assert env["medbench"]["git_commit"] == head.stdout.strip()
    assert isinstance(env["medbench"]["git_dirty"], bool)


def test_git_state_outside_a_checkout_is_none(tmp_path):
    (tmp_path / "__init__.py").write_text("")
    assert environment.git_state(tmp_path) == (None, None)


def test_only_relevant_env_vars_are_recorded(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    monkeypatch.setenv("MY_SECRET_TOKEN", "hunter2")
    recorded = capture_environment()["env"]
    assert recorded["OMP_NUM_THREADS"] == "3"
    assert recorded["TF_NUM_INTRAOP_THREADS"] == "2"
    assert recorded["XLA_FLAGS"].startswith("--xla")
    assert "MY_SECRET_TOKEN" not in recorded


def test_missing_tools_fail_soft(monkeypatch):
    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    env = capture_environment()
    assert env["gpus"] == [] and env["gpu_error"] is None
    assert env["medbench"]["git_commit"] is None


def test_failing_nvidia_smi_is_recorded_not_raised(monkeypatch):
    monkeypatch.setattr(environment.shutil, "which", lambda name: "/usr/bin/" + name)

    def fake_run(args, cwd=None):
        return subprocess.CompletedProcess(args, 9, stdout="", stderr="NVIDIA-SMI has failed")

    monkeypatch.setattr(environment, "_run", fake_run)
    gpus, error = environment.gpu_info()
    assert gpus == [] and "failed" in error


def test_parse_nvidia_smi():
    text = "NVIDIA H100 80GB HBM3, 81559, 550.54.15\nTesla T4, 15360, 535.1\n"
    assert environment.parse_nvidia_smi(text) == [
        {"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559, "driver_version": "550.54.15"},
        {"name": "Tesla T4", "memory_total_mib": 15360, "driver_version": "535.1"},
    ]


def test_cpu_model_reads_cpuinfo_and_falls_back(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Fake CPU @ 3.00GHz\n")
    assert environment.cpu_model(cpuinfo) == "Fake CPU @ 3.00GHz"
    monkeypatch.setattr(environment.platform, "processor", lambda: "fallback-cpu")
    assert environment.cpu_model(tmp_path / "absent") == "fallback-cpu"


@pytest.mark.parametrize(("text", "expected"), [("200000 100000\n", 2.0), ("max 100000\n", None), ("", None)])
def test_cgroup_cpu_limit(tmp_path, text, expected):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert environment.cgroup_cpu_limit(path) == expected
