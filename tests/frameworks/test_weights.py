"""Weights on disk: each framework's own format, torchvision-format checkpoints, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.frameworks.checkpoints import WeightsError, check_state_dict, read_state_dict
from tests.frameworks.harness import max_abs_diff

ALL = [
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=[pytest.mark.torch, pytest.mark.jax]),
    pytest.param("keras", marks=[pytest.mark.torch, pytest.mark.keras]),
    pytest.param("keras-jax", marks=[pytest.mark.torch, pytest.mark.keras_jax]),
    pytest.param("keras-torch", marks=[pytest.mark.torch, pytest.mark.keras_torch]),
]
OTHERS = ALL[1:]


@pytest.fixture
def job(framework, reference, request):
    return reference if framework == "torch" else request.getfixturevalue("ported_jobs")[framework]


@pytest.mark.parametrize("framework", ALL)
def test_own_format_round_trip(framework, job):
    arrays = job.arrays("weights")
    suffix = {"torch": ".safetensors", "jax": ".msgpack"}.get(framework, ".weights.h5")
    assert job["weights"]["own_path"].endswith(suffix)
    assert max_abs_diff(arrays["other_logits_before"], arrays["logits"]) > 1e-3  # a different model before
    assert np.array_equal(arrays["reloaded_logits"], arrays["logits"])


@pytest.mark.parametrize("framework", OTHERS)
def test_torch_checkpoints_load_into_every_framework(framework, job, reference):
    """torch.save's .pth (read without torch, by the restricted unpickler) and safetensors."""
    expected = reference.arrays("weights")["logits"]
    for name in ("pth", "safetensors"):
        assert max_abs_diff(job.arrays("weights")[f"{name}_logits"], expected) <= 1e-4, name


@pytest.mark.parametrize("framework", ALL)
def test_mismatched_checkpoints_fail_with_clear_messages(framework, job):
    errors = job["weights"]["errors"]
    for kind, needle in {
        "wrong_shape": "fc2.weight",
        "missing": "blocks.1.0.bn.running_var",
        "unexpected": "bogus.weight",
        "own_format_other_classes": "fc2",
    }.items():
        assert errors[kind]["raised"] == "WeightsError", (kind, errors[kind])
        assert needle in errors[kind]["message"], (kind, errors[kind]["message"])
    assert "shape mismatch" in errors["wrong_shape"]["message"]
    assert "missing" in errors["missing"]["message"]
    assert "unexpected" in errors["unexpected"]["message"]
    assert job["weights"]["non_strict_missing"]["raised"] is None


@pytest.mark.parametrize("framework", ALL)
def test_pickled_code_in_a_checkpoint_is_refused(framework, job):
    errors = job["weights"]["errors"]
    for kind in ("evil_pth", "evil_pth_numpy_reader"):
        assert errors[kind]["raised"] == "WeightsError", (kind, errors[kind])
    assert "refus" in errors["evil_pth_numpy_reader"]["message"]
    assert job["weights"]["evil_marker_exists"] is False


# ---- numpy only: no framework needed -----------------------------------------------------------------------
def test_check_state_dict_lists_the_first_few_problems():
    expected = {f"layer.{i}.weight": (3, 3) for i in range(8)} | {"bn.num_batches_tracked": ()}
    given = {f"layer.{i}.weight": np.zeros((3, 4)) for i in range(7)} | {"extra": np.zeros(1)}
    with pytest.raises(WeightsError) as info:
        check_state_dict(expected, given)
    message = str(info.value)
    assert "7 shape mismatch(es)" in message and "(and 2 more)" in message
    assert "1 missing name(s): layer.7.weight" in message
    assert "1 unexpected name(s): extra" in message
    assert "num_batches_tracked" not in message  # PyTorch-only buffers are never required


def test_check_state_dict_non_strict_still_rejects_shapes():
    check_state_dict({"a": (2,)}, {"b": np.zeros(1)}, strict=False)
    with pytest.raises(WeightsError, match="a: \\(3,\\) != \\(2,\\)"):
        check_state_dict({"a": (2,)}, {"a": np.zeros(3)}, strict=False)


def test_read_state_dict_refuses_unknown_files(tmp_path):
    with pytest.raises(WeightsError, match="No checkpoint"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="neither"):
        read_state_dict(tmp_path / "notes.pth")


def test_read_state_dict_reads_safetensors_without_a_framework(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    state = {"conv1.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    assert np.array_equal(read_state_dict(tmp_path / "w.safetensors")["conv1.weight"], state["conv1.weight"])
