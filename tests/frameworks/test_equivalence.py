"""The same model in PyTorch, Flax and Keras (on TensorFlow, JAX and torch): names, sizes, FLOPs and logits,
from converted weights."""

from __future__ import annotations

import numpy as np
import pytest

from tests.frameworks import plan
from tests.frameworks.harness import max_abs_diff

pytestmark = pytest.mark.torch  # PyTorch makes the reference in every test here

FRAMEWORKS = [
    pytest.param("jax", marks=pytest.mark.jax),
    pytest.param("keras", marks=pytest.mark.keras),
    # the smallest cases in the default suite, the others slow (tests/frameworks/conftest.py)
    pytest.param("keras-jax", marks=pytest.mark.keras_jax),
    pytest.param("keras-torch", marks=pytest.mark.keras_torch),
]
CASES = [pytest.param(c, id=c.id) for c in plan.FAST_CASES]
SLOW_CASES = [pytest.param(c, id=c.id) for c in plan.SLOW_CASES]
LOGIT_TOLERANCE = 1e-4  # max abs difference, float32, eval mode


def _without_torch_only(shapes: dict) -> dict:
    return {k: tuple(v) for k, v in shapes.items() if not k.endswith("num_batches_tracked")}


def _simple_cnn_params(in_channels, num_classes, widths=(32, 64, 128), convs_per_block=1, hidden=128) -> int:
    total, c = 0, in_channels
    for w in widths:
        for _ in range(convs_per_block):
            total += c * w * 9 + 2 * w  # conv (no bias) + BN weight and bias
            c = w
    return total + (c * hidden + hidden) + (hidden * num_classes + num_classes)


def test_reference_parameter_counts_are_the_known_ones(reference):
    """Independent of the other frameworks: the torch models have the counts a hand calculation gives."""
    assert reference["simple_cnn_28_grey"]["params"] == _simple_cnn_params(1, 9) == 110_569
    wide = _simple_cnn_params(3, 5, widths=(16, 32, 48), convs_per_block=2)
    assert reference["simple_cnn_64_rgb_2convs"]["params"] == wide
    # torchvision's resnet18 has 11,689,512 parameters at 1000 classes; the 3x3 stem and 11 classes change
    # conv1 (64*3*49 -> 64*3*9) and fc (512*1000+1000 -> 512*11+11)
    assert reference["resnet18_28_rgb"]["params"] == 11_689_512 - 64 * 3 * 40 - 513_000 + 512 * 11 + 11
    # the mlp head: fc.1 Linear(512, 64) and fc.3 Linear(64, 5) instead of fc Linear(512, classes); the
    # FLOPs differ by 2 x the MACs of those matmuls (biases, ReLU and dropout count nothing)
    mlp, linear = reference["resnet18_28_rgb_mlp"], reference["resnet18_28_rgb"]
    assert mlp["params"] == linear["params"] - (512 * 11 + 11) + (512 * 64 + 64) + (64 * 5 + 5)
    assert mlp["flops"] - linear["flops"] == 2 * (512 * 64 + 64 * 5 - 512 * 11)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_parameter_count(framework, case, reference, ported):
    assert ported[case.id]["params"] == reference[case.id]["params"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_names_and_shapes_when_built(framework, case, reference, ported):
    """Freshly built, every back-end exposes exactly torch's state_dict names and shapes."""
    expected = _without_torch_only(reference[case.id]["fresh_shapes"])
    got = _without_torch_only(ported[case.id]["fresh_shapes"])
    assert sorted(set(got) ^ set(expected)) == []
    assert {k: v for k, v in got.items() if expected[k] != v} == {}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_flops(framework, case, reference, ported):
    """Each framework counts its own graph; the 2*MACs convention makes the figures identical."""
    assert reference[case.id]["flops"] > 0
    assert ported[case.id]["flops"] == reference[case.id]["flops"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_converted_weights_give_the_same_logits(framework, case, reference, ported):
    expected = reference.arrays(case.id)["logits"]
    got = ported.arrays(case.id)["logits"]
    assert expected.shape == (case.batch, case.num_classes)
    assert np.std(expected) > 0.1  # informative logits, not a constant
    diff = max_abs_diff(got, expected)
    print(f"{framework} {case.id}: max abs logit diff {diff:.2e}")
    assert diff <= LOGIT_TOLERANCE


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_state_dict_round_trip_is_exact(framework, case, reference, ported):
    """torch -> framework -> torch gives back every array bit for bit (transposes only)."""
    expected = {k: v for k, v in reference.state(case.id).items() if not k.endswith("num_batches_tracked")}
    got = ported.state(case.id)
    assert set(got) == set(expected)
    assert [k for k in expected if not np.array_equal(got[k], expected[k])] == []


# the initialisation tests read ResNet cases too, which the Keras backends run in their slow job
WITH_SLOW_BACKENDS = [
    pytest.param("torch"),
    *FRAMEWORKS[:2],
    *(pytest.param(p.values[0], marks=[*p.marks, pytest.mark.slow]) for p in FRAMEWORKS[2:]),
]


@pytest.mark.parametrize("framework", WITH_SLOW_BACKENDS)
def test_initialisation_scheme(framework, reference, job_for):
    """torchvision's scheme everywhere: kaiming-normal(fan_out) convs, BN 1/0, Linear U(+-1/sqrt(fan_in))."""
    for case_id in plan.EXPORT_FRESH:
        job = reference if framework == "torch" else job_for(framework, case_id)
        state = job.state(case_id, prefix="fresh/")
        for key, w in state.items():
            if key.endswith("num_batches_tracked"):
                continue
            owner = key.rsplit(".", 1)[0]
            if w.ndim == 4:  # conv: std sqrt(2 / fan_out), fan_out = out * kh * kw
                expected = np.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
                tol = 0.25 if w.size < 2000 else 0.05
                assert abs(w.std() / expected - 1) < tol, (framework, key, w.std(), expected)
            elif owner + ".running_mean" in state:  # BatchNorm
                init = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}[
                    key.rsplit(".", 1)[1]
                ]
                assert np.all(w == init), (framework, key)
            else:  # Linear weight and bias: U(+-1/sqrt(fan_in))
                bound = 1 / np.sqrt(state[owner + ".weight"].shape[1])
                assert np.abs(w).max() <= bound, (framework, key)
                assert np.abs(w).max() > 0.8 * bound and abs(w.std() / (bound / np.sqrt(3)) - 1) < 0.25


@pytest.mark.parametrize("framework", WITH_SLOW_BACKENDS)
def test_mlp_head_initialisation(framework, reference, job_for):
    """Both Linear layers of ResNet's mlp head start as torchvision's fc: U(+-1/sqrt(fan_in))."""
    for case_id, prefix in plan.EXPORT_FRESH_HEAD.items():
        job = reference if framework == "torch" else job_for(framework, case_id)
        state = job.state(case_id, prefix="fresh/")
        assert sorted(state) == [f"{prefix}{i}.{kind}" for i in (1, 3) for kind in ("bias", "weight")]
        for i in (1, 3):
            weight, bias = state[f"{prefix}{i}.weight"], state[f"{prefix}{i}.bias"]
            bound = 1 / np.sqrt(weight.shape[1])
            assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound, (framework, i)
            assert abs(weight.std() / (bound / np.sqrt(3)) - 1) < 0.15, (framework, i)  # >= 320 draws
            assert np.abs(bias).max() <= bound and np.any(bias != 0), (framework, i)


# ---- slow: larger images and the other stem ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_slow_cases_match(framework, case, slow_reference, ported_slow):
    ref, got = slow_reference[case.id], ported_slow[case.id]
    assert got["params"] == ref["params"] and got["flops"] == ref["flops"]
    assert _without_torch_only(got["fresh_shapes"]) == _without_torch_only(ref["fresh_shapes"])
    diff = max_abs_diff(ported_slow.arrays(case.id)["logits"], slow_reference.arrays(case.id)["logits"])
    print(f"{framework} {case.id}: max abs logit diff {diff:.2e}")
    assert diff <= LOGIT_TOLERANCE


@pytest.mark.slow
def test_slow_reference_matches_torchvision_counts(slow_reference):
    # torchvision resnet18() at 224 px, RGB, 1000 classes; 3.6 GFLOPs = 2 x torchvision's "1.81 GFLOPS" (MACs)
    assert slow_reference["resnet18_224_rgb"]["params"] == 11_689_512
    assert slow_reference["resnet18_224_rgb"]["flops"] == 3_628_146_688
