"""The Keras trainer's fine-tuning plans on every Keras backend, checked on their own (PyTorch's agreement is
in test_training.py).

What :class:`~medbench.frameworks.base.TrainPlan` promises, on a small SimpleCNN: frozen parameters stay
bit-identical and get no optimizer state, a group moves at ``lr x lr_scale``, a group that joins by
``set_plan`` starts fresh (its own Adam step count) while the others continue, a dropped group freezes, a
frozen BatchNorm runs in inference mode, save_state/load_state carry a plan's state, and ``plan=None`` trains
exactly as a plan of one group holding everything. The ``mlp`` heads are named and initialised as
torchvision's Linear layers.

The pytest process stays free of TensorFlow (see ``tests/conftest.py``): the scenarios are functions of
this file run in a fresh worker (``harness.run_arrays("tests.frameworks.test_finetune_keras:worker_trainer",
..., framework="keras-jax")``), and the tests check the arrays they return.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.frameworks.harness import run_arrays

# (each backend's marker comes with the ``run`` fixture's parameter)


HEAD = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
BLOCK0 = ("blocks.0.0.conv.weight", "blocks.0.0.bn.weight", "blocks.0.0.bn.bias")
BLOCK1 = ("blocks.1.0.conv.weight", "blocks.1.0.bn.weight", "blocks.1.0.bn.bias")
NORMS = ("blocks.0.0.bn", "blocks.1.0.bn")
ADAM_LR = 1e-2
SGD_LR = 2.0**-3  # a power of two: lr x 0.5 is exact, so "half as far" holds to the last bit of each step


# ---- the worker (a fresh process with Keras on one backend) ------------------------------------------------
def worker_trainer(framework: str = "keras") -> dict[str, np.ndarray]:
    from medbench.config import OptimizerConfig, RuntimeConfig
    from medbench.errors import ConfigError
    from medbench.frameworks import get_framework
    from medbench.frameworks.base import ParamGroup, TrainPlan

    fw = get_framework(framework)
    fw.configure(RuntimeConfig(threads=1, deterministic=True))
    import keras  # after configure, which chooses the backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    start = _start_state(fw, rng)
    out: dict[str, np.ndarray] = {"x": x, "y": y, **{f"start/{k}": v for k, v in start.items()}}

    def model():
        m = fw.build_model("simple_cnn", num_classes=3, in_channels=1, image_size=8, **_CNN, seed=1)
        fw.load_state_dict(m, start)
        return m

    def record(tag: str, trainer, losses) -> None:
        out[f"{tag}/losses"] = np.array(losses)
        for key, value in fw.state_dict(trainer.model).items():
            out[f"{tag}/{key}"] = value

    def steps(trainer) -> dict[str, int]:
        """Adam's step count per parameter (PyTorch's ``state["step"]``)."""
        opt = trainer._torch_optimizer
        counts = keras.ops.convert_to_numpy(opt._steps)
        return {name: int(counts[opt._get_variable_index(v)]) for name, v in trainer._params.items()}

    def group(name, params, scale=1.0):
        return ParamGroup(name, tuple(params), scale)

    head = group("head", HEAD)

    # (1) frozen stages: head only; block 0's BatchNorm frozen, block 1's in training mode with frozen params
    sgd = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    m = model()
    out["count/before"] = np.array(fw.count_params(m))
    t = fw.create_trainer(m, optimizer=sgd, plan=TrainPlan((head,), frozen_norm=("blocks.0.0.bn",)))
    out["count/frozen"] = np.array(fw.count_params(m))
    record("frozen", t, [t.train_step(x, y).loss, t.train_step(x, y, lr=0.05).loss])
    buffers = t._torch_optimizer._buffers
    for name, variable in t._params.items():
        out[f"frozen/buffer/{name}"] = keras.ops.convert_to_numpy(
            buffers[t._torch_optimizer._get_variable_index(variable)]
        )

    # (2) every BatchNorm frozen (dropout 0): the training step's forward pass is the eval-mode one
    m = model()
    out["all_norm_frozen/eval_logits"] = fw.predict(m, x)
    t = fw.create_trainer(m, optimizer=sgd, plan=TrainPlan((head,), frozen_norm=NORMS))
    out["all_norm_frozen/train_logits"] = keras.ops.convert_to_numpy(m(x, training=True))
    out["all_norm_frozen/loss"] = np.array(t.train_step(x, y).loss)
    out["all_norm_frozen/unfrozen_train_logits"] = keras.ops.convert_to_numpy(model()(x, training=True))

    # (3) plain SGD, the backbone at lr x 0.5 against lr x 1
    plain = OptimizerConfig(name="sgd", lr=SGD_LR, momentum=0.0)
    for tag, scale in (("scale_half", 0.5), ("scale_one", 1.0)):
        t = fw.create_trainer(
            model(), optimizer=plain, plan=TrainPlan((head, group("backbone", BLOCK0 + BLOCK1, scale)))
        )
        record(tag, t, [t.train_step(x, y).loss])

    # (4) Adam: head for two steps, block 1 joins at 0.5, the head is dropped, then joins again as new
    adam = OptimizerConfig(name="adam", lr=ADAM_LR)
    joined = TrainPlan((head, group("block1", BLOCK1, 0.5)))
    t = fw.create_trainer(model(), optimizer=adam, plan=TrainPlan((head,)))
    losses = [t.train_step(x, y).loss, t.train_step(x, y).loss]
    record("gradual/2", t, losses)
    t.set_plan(joined)
    losses.append(t.train_step(x, y).loss)
    record("gradual/3", t, losses)
    out["gradual/3/steps"] = np.array(json.dumps(steps(t)))
    t.set_plan(TrainPlan((group("block1", BLOCK1, 0.5),)))
    losses.append(t.train_step(x, y).loss)
    record("gradual/4", t, losses)
    t.set_plan(joined)
    losses.append(t.train_step(x, y).loss)
    record("gradual/5", t, losses)
    out["gradual/5/steps"] = np.array(json.dumps(steps(t)))
    t = fw.create_trainer(model(), optimizer=adam, plan=TrainPlan((head,)))
    record("head_only/3", t, [t.train_step(x, y).loss for _ in range(3)])

    # (5) save_state after two steps, a new trainer (other weights) with that plan loads it, block 1 joins
    adamw = OptimizerConfig(name="adamw", lr=ADAM_LR, weight_decay=0.05)
    folder = Path(os.environ["FINETUNE_TMP"]) / "state"
    t = fw.create_trainer(model(), optimizer=adamw, plan=TrainPlan((head,), frozen_norm=NORMS))
    t.train_step(x, y)
    t.train_step(x, y)
    t.save_state(folder)
    t.set_plan(joined)
    record("straight", t, [t.train_step(x, y).loss])
    other = fw.build_model("simple_cnn", num_classes=3, in_channels=1, image_size=8, **_CNN, seed=7)
    t = fw.create_trainer(other, optimizer=adamw, plan=TrainPlan((head,), frozen_norm=NORMS))
    t.load_state(folder)
    t.set_plan(joined)
    record("resumed", t, [t.train_step(x, y).loss])

    # (6) plan=None against one group of every parameter, Adam with L2
    adam_l2 = OptimizerConfig(name="adam", lr=ADAM_LR, weight_decay=1e-3)
    m = model()
    t = fw.create_trainer(m, optimizer=adam_l2)
    record("no_plan", t, [t.train_step(x, y).loss, t.train_step(x, y, lr=ADAM_LR / 2).loss])
    out["count/no_plan"] = np.array(fw.count_params(m))
    everything = TrainPlan((group("all", t._params),))
    t = fw.create_trainer(model(), optimizer=adam_l2, plan=everything)
    record("one_group", t, [t.train_step(x, y).loss, t.train_step(x, y, lr=ADAM_LR / 2).loss])

    # (7) plans that cannot be right
    def error(fn) -> str:
        try:
            fn()
        except ConfigError as err:
            return str(err)
        return ""

    t = fw.create_trainer(model(), optimizer=adam, plan=TrainPlan((head,)))
    errors = {
        "unknown": error(lambda: t.set_plan(TrainPlan((group("head", HEAD + ("fc3.weight",)),)))),
        "changed": error(lambda: t.set_plan(TrainPlan((group("head", HEAD[:2]),)))),
        "twice": error(lambda: t.set_plan(TrainPlan((head, group("again", HEAD[:1]))))),
        "statistics": error(lambda: t.set_plan(TrainPlan((group("x", ("blocks.0.0.bn.running_mean",)),)))),
        "norm": error(lambda: t.set_plan(TrainPlan((head,), frozen_norm=("blocks.0.0.conv",)))),
    }
    out["errors"] = np.array(json.dumps(errors))

    # (8) ResNet's mlp head, initialised as torchvision's fc (PyTorch's default Linear init)
    m = fw.build_model("resnet18", num_classes=5, in_channels=3, image_size=28, head="mlp", head_hidden=64)
    for key, value in fw.state_dict(m).items():
        if key.startswith("fc"):
            out[f"resnet_mlp/{key}"] = value
    out["resnet_mlp/logits"] = fw.predict(m, rng.standard_normal((2, 28, 28, 3)).astype(np.float32))
    return out


def worker_efficientnet_head() -> dict[str, np.ndarray]:
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework

    fw = get_framework("keras")
    fw.configure(RuntimeConfig(threads=1))
    m = fw.build_model(
        "efficientnetv2_s", num_classes=7, in_channels=3, image_size=32, head="mlp", head_hidden=64
    )
    out = {key: value for key, value in fw.state_dict(m).items() if key.startswith("classifier")}
    out["logits"] = fw.predict(m, np.zeros((2, 32, 32, 3), np.float32))
    return out


_CNN = {"widths": (4, 8), "hidden": 8, "dropout": 0.0}


def _start_state(fw, rng) -> dict[str, np.ndarray]:
    """A SimpleCNN whose BatchNorm weights and running statistics are far from 1/0, so that inference mode
    and training mode differ, and whose hidden units are all alive on the batch (fc1's biases well above 0:
    a unit that ReLU zeroes on all 8 images gives its weights no gradient, and the tests below read how far
    each weight moved). Every other tensor is medbench's shared (numpy) initialisation: the same start on
    every Keras backend (whose own random initialisations differ), so every backend meets the same
    gradients."""
    from medbench.frameworks.families import resolve_model
    from medbench.frameworks.initialization import draw_state

    m = fw.build_model("simple_cnn", num_classes=3, in_channels=1, image_size=8, **_CNN, seed=0)
    family, options = resolve_model("simple_cnn", _CNN)
    state = draw_state(family, options, fw.state_dict(m), seed=0, image_size=8)
    for key in sorted(state):
        if ".bn." in key:
            low, high = (0.5, 2.0) if key.endswith(("weight", "running_var")) else (-0.5, 0.5)
            state[key] = rng.uniform(low, high, state[key].shape).astype(np.float32)
    state["fc1.bias"] = rng.uniform(1.0, 2.0, state["fc1.bias"].shape).astype(np.float32)
    return state


def _run_worker(name: str, out: Path, **kwargs: str) -> dict[str, np.ndarray]:
    """The arrays function ``name`` of this file returns, run in a fresh worker (``harness.run_arrays``)."""
    env = {"FINETUNE_TMP": str(out.parent), "KERAS_BACKEND": None}  # the framework name sets the backend
    return run_arrays(f"tests.frameworks.test_finetune_keras:{name}", out, env=env, timeout_s=900, **kwargs)


# every Keras backend: the plans are the trainer's, the step (and so what a plan does to it) the backend's
@pytest.fixture(
    scope="module",
    params=[
        pytest.param("keras", marks=pytest.mark.keras),
        # Keras's JAX backend compiles each step shape anew (a minute here): in the full suite only
        pytest.param("keras-jax", marks=[pytest.mark.keras_jax, pytest.mark.slow]),
        pytest.param("keras-torch", marks=pytest.mark.keras_torch),
    ],
)
def run(request, tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp(f"finetune_{request.param}")
    return _run_worker("worker_trainer", folder / "out.npz", framework=request.param)


def _state(run, tag: str) -> dict[str, np.ndarray]:
    prefix = f"{tag}/"
    return {
        k[len(prefix) :]: v for k, v in run.items() if k.startswith(prefix) and "/" not in k[len(prefix) :]
    }


# ---- the checks ----------------------------------------------------------------------------------------------
def test_frozen_parameters_stay_bit_identical_and_get_no_state(run):
    start, after = _state(run, "start"), _state(run, "frozen")
    for key in BLOCK0 + BLOCK1:  # the backbone: not updated, no weight decay, no momentum buffer
        np.testing.assert_array_equal(after[key], start[key], err_msg=key)
        assert not np.any(run[f"frozen/buffer/{key}"]), f"{key} has a momentum buffer"
    for key in HEAD:
        assert np.abs(after[key] - start[key]).max() > 1e-4, key
        assert np.any(run[f"frozen/buffer/{key}"]), f"{key} has no momentum buffer"
    # block 0's frozen BatchNorm kept its statistics; block 1's ran in training mode and updated them
    for stat in ("running_mean", "running_var"):
        np.testing.assert_array_equal(after[f"blocks.0.0.bn.{stat}"], start[f"blocks.0.0.bn.{stat}"])
        assert np.abs(after[f"blocks.1.0.bn.{stat}"] - start[f"blocks.1.0.bn.{stat}"]).max() > 1e-3
    # model.trainable_weights (count_params) show what the plan trains
    assert int(run["count/frozen"]) == sum(after[k].size for k in HEAD) < int(run["count/before"])


def test_a_frozen_batchnorm_runs_in_inference_mode(run):
    """Every BatchNorm frozen, dropout 0: the training step's loss is the eval-mode loss of the same batch."""
    logits, y = run["all_norm_frozen/eval_logits"].astype(np.float64), run["y"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -logp[np.arange(len(y)), y].mean()
    assert float(run["all_norm_frozen/loss"]) == pytest.approx(expected, rel=1e-5)
    frozen, eval_logits = run["all_norm_frozen/train_logits"], run["all_norm_frozen/eval_logits"]
    np.testing.assert_allclose(frozen, eval_logits, rtol=1e-6, atol=1e-6)
    # without the plan, training mode normalises with the batch statistics, which differ
    assert np.abs(run["all_norm_frozen/unfrozen_train_logits"] - eval_logits).max() > 1e-2


def test_a_group_at_half_the_learning_rate_moves_half_as_far(run):
    start, half, one = _state(run, "start"), _state(run, "scale_half"), _state(run, "scale_one")
    np.testing.assert_array_equal(run["scale_half/losses"], run["scale_one/losses"])  # the same gradients
    for key in HEAD:  # the head at scale 1 in both
        np.testing.assert_array_equal(half[key], one[key], err_msg=key)
    for key in BLOCK0 + BLOCK1:
        w0 = start[key].astype(np.float64)
        moved_half, moved_one = w0 - half[key], w0 - one[key]
        # lr x 0.5 x g is exactly half of lr x g (powers of two); only w - step rounds, by half an ulp of w
        ulp = np.spacing(np.maximum(np.abs(start[key]), np.abs(one[key])))
        assert np.abs(moved_one).max() > 1000 * ulp.max(), key  # a move the ulp tolerance cannot hide
        assert np.all(np.abs(moved_half - 0.5 * moved_one) <= ulp), key


def test_set_plan_keeps_surviving_state_and_starts_new_groups_fresh(run):
    start, two, three = _state(run, "start"), _state(run, "gradual/2"), _state(run, "gradual/3")
    head_only = _state(run, "head_only/3")
    # the head continued its Adam state across set_plan: as if block 1 had never joined
    for key in HEAD:
        np.testing.assert_allclose(three[key], head_only[key], rtol=1e-6, atol=1e-9, err_msg=key)
    # block 1 joined fresh: Adam's first step moves by lr x scale x g / (|g| + eps), about lr x 0.5
    for key in BLOCK1:
        np.testing.assert_array_equal(two[key], start[key])
        moved = np.abs(three[key] - two[key])
        assert moved.max() <= ADAM_LR * 0.5 * (1 + 1e-5), key
        assert np.median(moved) > ADAM_LR * 0.5 * 0.99, key  # a global step count (t = 3) would give 0.32 lr
    for key in BLOCK0:
        np.testing.assert_array_equal(three[key], start[key])
    counts = json.loads(str(run["gradual/3/steps"]))
    assert {counts[k] for k in HEAD} == {3} and {counts[k] for k in BLOCK1} == {1}
    assert {counts[k] for k in BLOCK0} == {0}


def test_a_dropped_group_freezes_and_rejoins_fresh(run):
    three, four, five = _state(run, "gradual/3"), _state(run, "gradual/4"), _state(run, "gradual/5")
    for key in HEAD:
        np.testing.assert_array_equal(four[key], three[key])  # dropped: frozen
        moved = np.abs(five[key] - four[key])  # back under a name the previous plan lacked: fresh, step 1
        assert moved.max() <= ADAM_LR * (1 + 1e-5) and np.median(moved) > 0.99 * ADAM_LR, key
    for key in BLOCK1:  # block 1 continued through both changes
        assert np.abs(four[key] - three[key]).max() > 1e-4
    counts = json.loads(str(run["gradual/5/steps"]))
    assert {counts[k] for k in HEAD} == {1} and {counts[k] for k in BLOCK1} == {3}


def test_save_and_load_state_with_a_plan(run):
    straight, resumed = _state(run, "straight"), _state(run, "resumed")
    assert sorted(straight) == sorted(resumed)
    for key in straight:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    start = _state(run, "start")
    assert np.abs(straight["blocks.1.0.conv.weight"] - start["blocks.1.0.conv.weight"]).max() > 1e-3


def test_no_plan_trains_as_one_group_of_everything(run):
    no_plan, one_group = _state(run, "no_plan"), _state(run, "one_group")
    for key in no_plan:
        np.testing.assert_array_equal(one_group[key], no_plan[key], err_msg=key)
    start = _state(run, "start")
    assert all(np.abs(no_plan[k] - start[k]).max() > 1e-3 for k in BLOCK0 + BLOCK1)
    assert int(run["count/no_plan"]) == int(run["count/before"])  # plan=None leaves the flags alone


def test_plans_that_do_not_fit_the_model_are_config_errors(run):
    errors = json.loads(str(run["errors"]))
    assert "fc3.weight" in errors["unknown"]
    assert "'head'" in errors["changed"]
    assert "fc1.weight" in errors["twice"]
    assert "running_mean" in errors["statistics"]
    assert "blocks.0.0.conv" in errors["norm"]


def test_resnet_mlp_head_has_torch_names_and_init(run):
    head = {k[len("resnet_mlp/") :]: v for k, v in run.items() if k.startswith("resnet_mlp/fc")}
    shapes = {k: v.shape for k, v in head.items()}
    assert shapes == {"fc.1.weight": (64, 512), "fc.1.bias": (64,), "fc.3.weight": (5, 64), "fc.3.bias": (5,)}
    for layer in ("fc.1", "fc.3"):  # PyTorch's nn.Linear: weight and bias U(+-1/sqrt(fan_in))
        bound = 1 / np.sqrt(head[f"{layer}.weight"].shape[1])
        for leaf in ("weight", "bias"):
            w = head[f"{layer}.{leaf}"]
            assert np.abs(w).max() <= bound and np.any(w != 0), (layer, leaf)
            if w.size >= 16:  # fc.3's 5 biases all fall below half the bound one time in 32
                assert np.abs(w).max() > 0.5 * bound, (layer, leaf)
    assert run["resnet_mlp/logits"].shape == (2, 5)


@pytest.mark.slow
@pytest.mark.keras
def test_efficientnet_mlp_head_has_torch_names_and_init(tmp_path):
    out = _run_worker("worker_efficientnet_head", tmp_path / "out.npz")
    shapes = {k: v.shape for k, v in out.items() if k.startswith("classifier")}
    expected = {"classifier.1.weight": (64, 1280), "classifier.1.bias": (64,)}
    assert shapes == {**expected, "classifier.3.weight": (7, 64), "classifier.3.bias": (7,)}
    for layer in ("classifier.1", "classifier.3"):  # torchvision: U(+-1/sqrt(out_features)), zero bias
        w = out[f"{layer}.weight"]
        bound = 1 / np.sqrt(w.shape[0])
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, layer
        assert not np.any(out[f"{layer}.bias"]), layer
    assert out["logits"].shape == (2, 7)
