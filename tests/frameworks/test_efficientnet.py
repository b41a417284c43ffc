"""EfficientNetV2 S/M/L: the same network in PyTorch, Flax and Keras, in torchvision's layout.

The model checks run through the framework harness (``harness.run_job``: one fresh worker process per
framework, the :class:`~medbench.frameworks.base.Backend` API only). PyTorch is the reference: it
calibrates each model's BatchNorm and exports the weights, and the Flax and Keras jobs load them.
Calibration runs on 96 px images: at 28 px the last stage is 1x1, a single calibration batch leaves
channels with running variances near 1e-15, and the eval-mode network becomes so ill-conditioned that
torch float32 and float64 disagree by 1e4 in the logits, so no cross-framework comparison could mean anything.

Stochastic depth in training mode is not reachable through the Backend API (only whole training steps
are), so one residual block per framework is checked by a function of this file run in a fresh worker
the same way (``harness.run_arrays("tests.frameworks.test_efficientnet:worker_stochastic_depth", ...)``).

torchvision is not importable in this environment (``tools/check_torchvision_layout.py`` compares with it
in its own); its figures for ``efficientnet_v2_{s,m,l}()`` (torchvision 0.29.1, 1000 classes, 3 channels)
are frozen below: trainable parameters, and a SHA-256 of the ``"key:[shape]"`` lines of its
``state_dict`` without the stem conv and the classifier, whose shapes depend on channels and classes.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.frameworks import plan
from tests.frameworks.harness import JobResult, max_abs_diff, run_arrays, run_job

TORCHVISION = {  # variant: (trainable parameters, stem width, sha256 of the other "key:[shape]" lines)
    "s": (21_458_488, 24, "492017cf00f604ce10a60c1c513d47820547d83cde65310ca07029fbf596f8a4"),
    "m": (54_139_356, 24, "f18c1f106b76896b7feb4861deee9ae9aafb8db4bfb571464a686b5f0d120233"),
    "l": (118_515_272, 32, "1a793ec910d691fad7319b25dc294ee6c2c3e6f119814ef5f359aeec418251cf"),
}
WIDTH_DEPENDENT = ("features.0.0.weight", "classifier.1.weight", "classifier.1.bias")
LAST_CHANNEL = 1280
LOGIT_TOLERANCE = 1e-4  # max abs difference, float32, eval mode
CALIBRATION_SIZE = 96
OTHERS = [pytest.param("jax", marks=pytest.mark.jax), pytest.param("keras", marks=pytest.mark.keras)]

# Stochastic depth and dropout are on (0.5 each) in every case: eval-mode logits that equal torch's show that
# all three switch them off in evaluation. Fast: each size, each channel count, non-default class counts.
_RANDOM = {"dropout": 0.5, "stochastic_depth_prob": 0.5}
FAST_CASES = [
    plan.Case("effv2_s_28_grey", "efficientnetv2_s", 28, 1, 5, _RANDOM, batch=2),
    plan.Case("effv2_s_64_rgb", "efficientnetv2_s", 64, 3, 11, _RANDOM, batch=2),
]
SLOW_CASES = [
    plan.Case("effv2_s_64_grey", "efficientnetv2_s", 64, 1, 3, _RANDOM, batch=2),
    plan.Case("effv2_s_28_rgb", "efficientnetv2_s", 28, 3, 1000, _RANDOM, batch=2),
    plan.Case("effv2_m_28_rgb", "efficientnetv2_m", 28, 3, 7, _RANDOM, batch=2),
    plan.Case("effv2_m_32_grey", "efficientnetv2_m", 32, 1, 2, _RANDOM, batch=2),
    plan.Case("effv2_l_28_grey", "efficientnetv2_l", 28, 1, 4, _RANDOM, batch=2),
    plan.Case("effv2_l_32_rgb", "efficientnetv2_l", 32, 3, 9, _RANDOM, batch=2),
]
# Training steps with lr = 0 leave the weights alone, so two steps on one batch differ only by randomness.
# 64 px: at 32 px training-mode BatchNorm normalises 4 values per channel in the 1x1 last stage, and torch
# float32 and float64 losses already differ by 3e-4 there; at 64 px by 4e-6.
TRAIN_CASES = {
    "effv2_s_train_random": plan.Case("train_random", "efficientnetv2_s", 64, 3, 4, _RANDOM, batch=4),
    "effv2_s_train_plain": plan.Case(
        "train_plain", "efficientnetv2_s", 64, 3, 4, {"dropout": 0.0, "stochastic_depth_prob": 0.0}, batch=4
    ),
}


def torchvision_params(variant: str, in_channels: int, num_classes: int) -> int:
    """torchvision's count with the stem conv and the classifier resized (stem conv has no bias)."""
    total, stem, _ = TORCHVISION[variant]
    total += stem * 9 * (in_channels - 3)
    return total + (LAST_CHANNEL + 1) * (num_classes - 1000)


def layout_digest(shapes: dict) -> str:
    text = "".join(f"{k}:{list(v)}\n" for k, v in shapes.items() if k not in WIDTH_DEPENDENT)
    return hashlib.sha256(text.encode()).hexdigest()


# ---- jobs --------------------------------------------------------------------------------------------------
def _inputs(cases: list[plan.Case], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for c in cases:
        out[f"x/{c.id}"] = rng.standard_normal(
            (c.batch, c.image_size, c.image_size, c.in_channels), np.float32
        )
        shape = (8, CALIBRATION_SIZE, CALIBRATION_SIZE, c.in_channels)
        out[f"calib/{c.id}"] = rng.standard_normal(shape, np.float32)
    return out


def _model_tasks(cases: list[plan.Case], *, reference: bool) -> list[dict]:
    tasks = plan.model_tasks(cases, reference=reference)
    for task in tasks:
        task["export_fresh"] = True  # for the initialisation test; costs one state_dict
    return tasks


def _train_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    out = {}
    for tid, c in TRAIN_CASES.items():
        out[f"x/{tid}"] = rng.standard_normal(
            (c.batch, c.image_size, c.image_size, c.in_channels), np.float32
        )
        out[f"y/{tid}"] = rng.integers(0, c.num_classes, (c.batch, 1), dtype=np.int64)
        out[f"calib/{tid}"] = rng.standard_normal(
            (8, CALIBRATION_SIZE, CALIBRATION_SIZE, c.in_channels), np.float32
        )
    return out


def _train_tasks(*, reference: bool) -> list[dict]:
    tasks = []
    for tid, c in TRAIN_CASES.items():
        step = {"images": f"x/{tid}", "labels": f"y/{tid}", "lr": 0.0}
        # lr = 0 comes with each step: a config's own lr must be positive (OptimizerConfig refuses 0)
        task = {"id": tid, "kind": "train", "build": c.build(), "optimizer": {"name": "sgd", "lr": 1.0}}
        task["steps"] = [step, step]
        task.update({"calibrate": f"calib/{tid}"} if reference else {"weights": f"w/{tid}/"})
        tasks.append(task)
    return tasks


def _plan(name: str):
    """(tasks(reference=...), input arrays) of the plan ``name``: "fast", "slow" or "train"."""
    if name == "train":
        return _train_tasks, _train_inputs()
    cases = FAST_CASES if name == "fast" else SLOW_CASES
    return partial(_model_tasks, cases), _inputs(cases, seed=0 if name == "fast" else 1)


_JOBS: dict[tuple[str, str], JobResult] = {}


def job(workdir: Path, plan_name: str, framework: str) -> JobResult:
    """The job of ``framework`` for one plan, run once per session; torch's first, as the reference."""
    if (plan_name, framework) not in _JOBS:
        tasks, arrays = _plan(plan_name)
        if (plan_name, "torch") not in _JOBS:
            directory = workdir / f"effv2_{plan_name}_torch"
            _JOBS[plan_name, "torch"] = run_job("torch", directory, tasks(reference=True), arrays)
        if framework != "torch":
            ids = [t["id"] for t in tasks(reference=True)]
            arrays.update(plan.reference_weights(_JOBS[plan_name, "torch"], ids))
            directory = workdir / f"effv2_{plan_name}_{framework}"
            _JOBS[plan_name, framework] = run_job(framework, directory, tasks(reference=False), arrays)
    return _JOBS[plan_name, framework]


# ---- (1) parameter counts, (2) logits from converted weights, (4) torchvision's layout ---------------------
def _check_model_case(workdir, plan_name, framework, case):
    """torch: torchvision's count and layout; jax/keras: torch's count, names, shapes, FLOPs and logits."""
    ref = job(workdir, plan_name, "torch")
    variant = case.model.rsplit("_", 1)[1]
    assert ref[case.id]["params"] == torchvision_params(variant, case.in_channels, case.num_classes)
    shapes = ref[case.id]["fresh_shapes"]
    assert layout_digest(shapes) == TORCHVISION[variant][2], (
        "state_dict keys or shapes differ from torchvision"
    )
    stem = TORCHVISION[variant][1]
    assert shapes["features.0.0.weight"] == [stem, case.in_channels, 3, 3]
    assert shapes["classifier.1.weight"] == [case.num_classes, LAST_CHANNEL]
    if framework == "torch":
        return
    got = job(workdir, plan_name, framework)
    assert got[case.id]["params"] == ref[case.id]["params"]
    assert got[case.id]["flops"] == ref[case.id]["flops"] > 0
    without_torch_only = {k: v for k, v in shapes.items() if not k.endswith("num_batches_tracked")}
    assert got[case.id]["fresh_shapes"] == without_torch_only
    diff = max_abs_diff(got.arrays(case.id)["logits"], ref.arrays(case.id)["logits"])
    print(f"{framework} {case.id}: max abs logit diff {diff:.2e}")
    assert np.std(ref.arrays(case.id)["logits"]) > 0.1  # informative logits, not a constant
    assert diff <= LOGIT_TOLERANCE


@pytest.mark.torch  # PyTorch makes the reference, or is the framework under test
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in FAST_CASES])
@pytest.mark.parametrize("framework", [pytest.param("torch"), *OTHERS])
def test_same_model_as_torch_and_torchvision(workdir, framework, case):
    _check_model_case(workdir, "fast", framework, case)


@pytest.mark.torch  # PyTorch makes the reference, or is the framework under test
@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in SLOW_CASES])
@pytest.mark.parametrize("framework", [pytest.param("torch"), *OTHERS])
def test_same_model_as_torch_and_torchvision_slow(workdir, framework, case):
    _check_model_case(workdir, "slow", framework, case)


@pytest.mark.torch  # PyTorch makes the reference, or is the framework under test
@pytest.mark.parametrize("framework", [pytest.param("torch"), *OTHERS])
def test_initialisation_scheme(workdir, framework):
    """torchvision's EfficientNet scheme: kaiming-normal(fan_out) convs (depthwise and squeeze convs too) with
    zero bias, BN 1/0, classifier U(+-1/sqrt(out_features)) with zero bias."""
    got = job(workdir, "fast", framework)
    case = FAST_CASES[1]
    state = got.state(case.id, prefix="fresh/")
    kinds = set()
    for key, w in state.items():
        owner, leaf = key.rsplit(".", 1)
        if leaf == "num_batches_tracked":
            continue
        if owner + ".running_mean" in state:
            init = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}[leaf]
            assert np.all(w == init), (framework, key)
            kinds.add("bn")
        elif leaf == "bias":
            assert np.all(w == 0), (framework, key)
        elif w.ndim == 4:
            expected = np.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))  # torch's fan_out ignores groups
            tol = 0.3 if w.size < 500 else 0.1 if w.size < 5000 else 0.03
            assert abs(w.std() / expected - 1) < tol, (framework, key, w.std(), expected)
            kinds.add("depthwise" if w.shape[1] == 1 and w.shape[2] == 3 else "conv")
        else:
            bound = 1 / np.sqrt(w.shape[0])
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, (framework, key)
            kinds.add("linear")
    assert kinds == {"bn", "conv", "depthwise", "linear"}


# ---- (3) training mode is random, evaluation mode deterministic --------------------------------------------
def worker_stochastic_depth(framework: str) -> dict[str, np.ndarray]:
    """One residual MBConv block with stochastic depth 0.5: training-mode calls, one with p set to 0, eval."""
    from medbench.frameworks.efficientnet_spec import BlockSpec

    cfg = BlockSpec("mbconv", 3, 1, 16, 16, 64, 4, residual=True, stochastic_depth_prob=0.5)
    x = np.random.default_rng(0).standard_normal((64, 4, 4, 16), np.float32)
    if framework == "torch":
        import torch

        from medbench.frameworks.torch.efficientnet import MBConvBlock

        torch.manual_seed(0)
        block, xt = MBConvBlock(cfg), torch.from_numpy(x).permute(0, 3, 1, 2)

        def call(train: bool, p: float = 0.5) -> np.ndarray:
            block.train(train)
            block.stochastic_depth.p = p
            with torch.no_grad():
                return block(xt.clone()).permute(0, 2, 3, 1).numpy()

    elif framework == "jax":
        from flax import nnx

        from medbench.frameworks.jax.efficientnet import MBConvBlock
        from medbench.frameworks.jax.train import mode_view

        block = MBConvBlock(cfg, dtype=None, rngs=nnx.Rngs(0))

        def call(train: bool, p: float = 0.5) -> np.ndarray:
            block.stochastic_depth.rate = p
            return np.asarray(mode_view(block, train=train)(x))

    else:
        import keras

        from medbench.frameworks.keras.efficientnet import mbconv_block
        from medbench.frameworks.keras.layers import layer_name

        keras.utils.set_random_seed(0)
        model = mbconv_block(cfg, "features.5.1")
        dropout = model.get_layer(layer_name("features.5.1.stochastic_depth"))

        def call(train: bool, p: float = 0.5) -> np.ndarray:
            dropout.rate = p
            return np.asarray(model(x, training=train))

    return {
        "x": x,
        "train1": call(True),
        "train2": call(True),
        "train_p0": call(True, p=0.0),
        "eval1": call(False),
        "eval2": call(False),
    }


def _run_worker(name: str, out: Path, **kwargs) -> dict[str, np.ndarray]:
    """The arrays function ``name`` of this file returns, run in a fresh worker (``harness.run_arrays``)."""
    target = f"tests.frameworks.test_efficientnet:{name}"
    return run_arrays(target, out, env={"KERAS_BACKEND": "tensorflow"}, timeout_s=600, **kwargs)


@pytest.mark.torch  # PyTorch makes the reference, or is the framework under test
@pytest.mark.parametrize("framework", [pytest.param("torch"), *OTHERS])
def test_stochastic_depth_drops_whole_samples_in_training_only(workdir, framework):
    """torchvision's StochasticDepth(p, "row"): per sample, the residual branch is dropped entirely or kept
    and scaled by 1 / (1 - p); a new draw every call; nothing dropped in evaluation."""
    r = _run_worker("worker_stochastic_depth", workdir / f"sd_{framework}.npz", framework=framework)
    x = r["x"]
    branch = (r["train_p0"] - x).reshape(len(x), -1)  # the branch itself, batch statistics as in train1
    assert np.all(np.abs(branch).max(axis=1) > 1e-3)
    dropped = []
    for call in ("train1", "train2"):
        residual = (r[call] - x).reshape(len(x), -1)
        gone = np.all(residual == 0, axis=1)
        assert 0.25 < gone.mean() < 0.75, (
            f"{framework}: {gone.mean():.2f} of the samples dropped with p = 0.5"
        )
        np.testing.assert_allclose(residual[~gone], 2.0 * branch[~gone], rtol=1e-5, atol=1e-5)
        dropped.append(gone)
    assert np.any(dropped[0] != dropped[1]), f"{framework}: two training-mode calls dropped the same samples"
    np.testing.assert_array_equal(r["eval1"], r["eval2"])
    assert np.all(np.abs(r["eval1"] - x).reshape(len(x), -1).max(axis=1) > 1e-3)


@pytest.mark.torch  # PyTorch makes the reference, or is the framework under test
@pytest.mark.slow
@pytest.mark.parametrize("framework", [pytest.param("torch"), *OTHERS])
def test_training_steps_are_random_only_with_dropout_or_stochastic_depth(workdir, framework):
    """Whole model, the trainer's own path, lr = 0: the same batch twice gives two losses with stochastic
    depth and dropout on, and one loss (torch's, in every framework) with both off."""
    got = job(workdir, "train", framework)
    ref = job(workdir, "train", "torch")
    random_losses = got["effv2_s_train_random"]["losses"]
    assert abs(random_losses[0] - random_losses[1]) > 1e-4, f"{framework}: {random_losses}"
    plain = got["effv2_s_train_plain"]["losses"]
    assert plain[0] == pytest.approx(plain[1], abs=1e-6)
    assert plain[0] == pytest.approx(ref["effv2_s_train_plain"]["losses"][0], abs=1e-4)
    for tid in TRAIN_CASES:
        arrays = got.arrays(tid)
        np.testing.assert_allclose(arrays["eval_logits"], arrays["predict_logits"], atol=1e-5)


# ---- the shared spec, without any framework ----------------------------------------------------------------
def test_stochastic_depth_grows_linearly_with_depth():
    from medbench.frameworks.efficientnet_spec import block_plan

    probs = [b.stochastic_depth_prob for stage in block_plan("s", 0.2) for b in stage]
    assert len(probs) == 40  # 2 + 4 + 4 + 6 + 9 + 15 blocks
    np.testing.assert_allclose(probs, 0.2 * np.arange(40) / 40)


def test_unknown_option_and_variant_are_rejected():
    from medbench.errors import ConfigError
    from medbench.frameworks.efficientnet_spec import EfficientNetV2Config

    assert EfficientNetV2Config.from_options({"variant": "m"}).dropout == 0.3
    with pytest.raises(ConfigError, match="stochastic_depth"):
        EfficientNetV2Config.from_options({"variant": "s", "stochastic_depth": 0.1})
    with pytest.raises(ConfigError, match="'xl'"):
        EfficientNetV2Config.from_options({"variant": "xl"})
    with pytest.raises(ConfigError, match="dropout"):
        EfficientNetV2Config.from_options({"variant": "s", "dropout": 1.0})
