"""``runtime.compile`` and ``runtime.settings`` reach each framework, and compiled training steps give the
eager steps' losses.

Each framework runs one fresh process configured with a compile choice and some catalog settings. The
process trains the configured trainer and, beside it, one with the other compile choice from the same
weights on the same batches, then reads the settings back from the framework itself (not from what
``configure`` returned). ``torch.compile`` takes a minute to compile on a busy CPU: those two tests are slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.frameworks.harness import run_job

# compiled and eager differ only in the order of floating-point sums (fusions)
LOSS_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def _run(framework, tmp_path, settings, *, other=None):
    job = run_job(framework, tmp_path / framework, [{"id": "compile", "kind": "compile", "other": other}],
                  settings=settings)  # fmt: skip
    return job, job["compile"], job.results["_applied"]


def _same_steps(job, seen) -> None:
    np.testing.assert_allclose(seen["configured_losses"], seen["other_losses"], **LOSS_TOLERANCE)
    logits = job.arrays("compile")
    np.testing.assert_allclose(logits["configured_logits"], logits["other_logits"], rtol=1e-3, atol=1e-4)
    assert seen["configured_losses"][-1] < seen["configured_losses"][0]  # it trains


@pytest.mark.torch
def test_torch_settings_reach_torch(tmp_path):
    _, seen, applied = _run("torch", tmp_path, {"settings": {"onednn": False}, "channels_last": False})
    assert seen["mkldnn_enabled"] is False and applied["settings"]["onednn"] is False
    assert (applied["compile"], applied["compile_mode"]) == (False, "eager")  # None: out of the box
    assert seen["configured_compiled"] == "eager"


@pytest.mark.slow
@pytest.mark.torch
def test_torch_compile_trains_as_eager(tmp_path):
    job, seen, applied = _run("torch", tmp_path, {"compile": True}, other=False)
    assert applied["compile"] is True and "torch.compile" in applied["compile_mode"]
    assert (seen["configured_compiled"], seen["other_compiled"]) == ("torch.compile", "eager")
    _same_steps(job, seen)


@pytest.mark.jax
def test_jax_is_always_jitted_and_takes_xla_flags(tmp_path):
    _, seen, applied = _run(
        "jax", tmp_path, {"compile": True, "settings": {"xla_flags": "--xla_cpu_use_xnnpack=true"}}
    )
    assert "--xla_cpu_use_xnnpack=true" in seen["xla_flags"]
    assert applied["compile"] is True and applied["settings"]["small_map_conv"] == "xla"
    assert applied["small_map_conv_applied"] is True  # handed to the JAX layers
    assert seen["configured_compiled"] == "jax.jit"
    assert seen["configured_losses"][-1] < seen["configured_losses"][0]


@pytest.mark.keras
def test_keras_jit_compile_trains_as_graph_mode_and_onednn_switches_off(tmp_path):
    job, seen, applied = _run(
        "keras", tmp_path, {"compile": True, "settings": {"tf_onednn": False}}, other=False
    )
    assert seen["tf_onednn_env"] == "0" and seen["tf_mkl_enabled"] is False
    assert applied["compile"] is True and "jit_compile=True" in applied["compile_mode"]
    assert (seen["configured_compiled"], seen["other_compiled"]) == ("xla", "tf.function")
    _same_steps(job, seen)


@pytest.mark.keras_jax
@pytest.mark.slow
def test_keras_jax_without_jit_trains_as_jitted(tmp_path):
    settings = {"compile": False, "settings": {"xla_flags": "--xla_cpu_use_xnnpack=true"}}
    job, seen, applied = _run("keras-jax", tmp_path, settings, other=True)
    assert "--xla_cpu_use_xnnpack=true" in seen["xla_flags"]
    assert applied["compile"] is False and applied["keras_backend"] == "jax"
    assert (seen["configured_compiled"], seen["other_compiled"]) == ("eager", "jax.jit")
    _same_steps(job, seen)


@pytest.mark.keras_torch
def test_keras_torch_settings_reach_torch(tmp_path):
    _, seen, applied = _run("keras-torch", tmp_path, {"settings": {"onednn": False}})
    assert seen["mkldnn_enabled"] is False and applied["settings"]["onednn"] is False
    assert applied["compile"] is False and seen["configured_compiled"] == "eager"


@pytest.mark.slow
@pytest.mark.keras_torch
def test_keras_torch_jit_compile_trains_as_eager(tmp_path):
    job, seen, applied = _run("keras-torch", tmp_path, {"compile": True}, other=False)
    assert applied["compile"] is True and "torch.compile" in applied["compile_mode"]
    assert (seen["configured_compiled"], seen["other_compiled"]) == ("torch.compile", "eager")
    _same_steps(job, seen)
