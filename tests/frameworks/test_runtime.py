"""``configure(threads=1)`` really applies, read back from each framework in a fresh process; bf16 runs.

One process per framework applies ``threads=1, interop_threads=1, precision="bf16"``, reads the settings
back from the framework itself (not from what ``configure`` returned), and builds, predicts and trains a
tiny model in mixed precision: float32 logits, finite, and a loss that goes down.
"""

from __future__ import annotations

import pytest

from tests.frameworks.harness import run_job

SETTINGS = {"threads": 1, "interop_threads": 1, "precision": "bf16"}
TASKS = [{"id": "runtime", "kind": "runtime"}]


def _run(framework, tmp_path):
    job = run_job(framework, tmp_path / framework, TASKS, settings=SETTINGS)
    seen = job["runtime"]
    assert seen["logits_shape"] == [4, 3] and seen["logits_dtype"] == "float32"
    assert seen["trained_logits_finite"] and seen["losses"][-1] < seen["losses"][0]
    return seen, job.results["_applied"], job.results["_versions"]


@pytest.mark.torch
def test_torch_threads_apply(tmp_path):
    seen, applied, versions = _run("torch", tmp_path)
    assert (seen["intra"], seen["inter"]) == (1, 1)
    assert (applied["threads"], applied["interop_threads"]) == (1, 1)
    assert applied["autocast_dtype"] == "bfloat16" and "torch" in versions


@pytest.mark.jax
def test_jax_threads_apply(tmp_path):
    seen, applied, versions = _run("jax", tmp_path)
    assert "--xla_cpu_multi_thread_eigen=false" in seen["xla_flags"]
    assert len(seen["affinity"]) == 1 and applied["cpu_affinity"] == seen["affinity"]
    assert applied["compute_dtype"] == "bfloat16" and applied["param_dtype"] == "float32"
    assert "flax" in versions


@pytest.mark.keras
def test_keras_threads_apply(tmp_path):
    seen, applied, versions = _run("keras", tmp_path)
    assert (seen["intra"], seen["inter"]) == (1, 1)
    assert seen["keras_backend"] == "tensorflow" and seen["policy"] == "mixed_bfloat16"
    assert applied["keras_backend"] == "tensorflow" and "tensorflow" in versions


@pytest.mark.keras_jax
@pytest.mark.slow  # keras (on TensorFlow) and torch cover the same code by default
def test_keras_jax_threads_apply(tmp_path):
    """Keras on JAX: medbench's JAX thread settings, the bf16 policy, and no TensorFlow in the process."""
    seen, applied, versions = _run("keras-jax", tmp_path)
    assert "--xla_cpu_multi_thread_eigen=false" in seen["xla_flags"] and len(seen["affinity"]) == 1
    assert seen["keras_backend"] == "jax" and seen["policy"] == "mixed_bfloat16"
    assert applied["keras_backend"] == "jax" and versions["keras_backend"] == "jax"
    assert not seen["tensorflow_imported"]


@pytest.mark.keras_torch
@pytest.mark.slow
def test_keras_torch_threads_apply(tmp_path):
    seen, applied, versions = _run("keras-torch", tmp_path)
    assert (seen["intra"], seen["inter"]) == (1, 1)
    assert seen["keras_backend"] == "torch" and seen["policy"] == "mixed_bfloat16"
    assert applied["keras_backend"] == "torch" and versions["keras_backend"] == "torch"
    assert not seen["tensorflow_imported"]
