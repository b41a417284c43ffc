"""One start and one stream of randomness for every framework (issue 11, items 1-3).

* the numpy reference draw follows PyTorch's own initialisation, tensor by tensor (no framework needed for
  the rules; torch for the comparison);
* shared init gives bit-identical starting state dicts in PyTorch, JAX and Keras (on TensorFlow, JAX and
  torch);
* shared noise: the masks are a pure function of (seed, epoch, step) with inverted-dropout semantics, and
  20 steps of simple_cnn with dropout 0.5 give the same losses (rtol 1e-5) in every framework;
* ``--init native --noise native`` is the old code path: the loss trajectory equals a run's that never
  touches the shared machinery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medbench.config import RunConfig, parse_config, stored_config
from medbench.data.noise import NoiseStream, site_mask
from medbench.frameworks.initialization import Rule, draw_state, reference_rules
from medbench.frameworks.noise import NoiseSite, current_mask, noise_sites, shared_masks
from medbench.results import ResultsStore
from tests.frameworks import harness

ROOT = Path(__file__).resolve().parents[1]
BREAST = ROOT.parent / "shared" / "data" / "medmnist" / "breastmnist.npz"
FRAMEWORKS = ("torch", "jax", "keras", "keras-jax", "keras-torch")
OTHERS = FRAMEWORKS[1:]  # compared with torch


# ---- the reference rules, without a framework -----------------------------------------------------------
def test_rules_follow_the_module_kind_and_the_family():
    shapes = {
        "conv.weight": (8, 4, 3, 3),
        "bn.weight": (8,),
        "bn.bias": (8,),
        "bn.running_mean": (8,),
        "bn.running_var": (8,),
        "bn.num_batches_tracked": (),
        "fc.weight": (10, 16),
        "fc.bias": (10,),
    }
    rules = reference_rules("simple_cnn", {}, shapes, image_size=28)
    assert rules["conv.weight"] == Rule("normal", np.sqrt(2.0 / (8 * 9)))  # fan_out = out x kh x kw
    assert rules["fc.weight"] == Rule("uniform", 1 / 4) and rules["fc.bias"] == Rule("uniform", 1 / 4)
    assert rules["bn.running_var"] == Rule("constant", 1.0) and rules["bn.bias"] == Rule("constant", 0.0)
    # EfficientNetV2's classifier: U(+-1/sqrt(out_features)), zero bias
    eff = reference_rules("efficientnetv2", {"variant": "s"}, shapes, image_size=28)
    assert eff["fc.weight"] == Rule("uniform", 1 / np.sqrt(10)) and eff["fc.bias"] == Rule("constant", 0.0)
    # ResNet's zero_init_residual zeroes the last BatchNorm of each block, nothing else
    res = {"layer1.0.bn2.weight": (8,), "layer1.0.bn2.running_mean": (8,), "bn1.weight": (8,)}
    res["bn1.running_mean"] = (8,)
    zero = reference_rules("resnet", {"zero_init_residual": True}, res, image_size=28)
    assert zero["layer1.0.bn2.weight"] == Rule("constant", 0.0) and zero["bn1.weight"] == Rule(
        "constant", 1.0
    )


def test_a_tensor_the_rules_do_not_know_is_refused():
    from medbench.errors import ConfigError

    with pytest.raises(ConfigError, match="No reference initialisation for ln.weight"):
        reference_rules("simple_cnn", {}, {"ln.weight": (8,)}, image_size=28)


def test_each_tensor_depends_on_seed_and_name_only():
    like = {"a.weight": np.zeros((64, 32), np.float32), "a.bias": np.zeros(64, np.float32)}
    both = draw_state("simple_cnn", {}, like, seed=7, image_size=28)
    alone = draw_state("simple_cnn", {}, {"a.weight": like["a.weight"]}, seed=7, image_size=28)
    np.testing.assert_array_equal(both["a.weight"], alone["a.weight"])  # the other tensors do not matter
    other_seed = draw_state("simple_cnn", {}, like, seed=8, image_size=28)
    assert not np.array_equal(both["a.weight"], other_seed["a.weight"])
    assert both["a.weight"].dtype == np.float32 and np.abs(both["a.weight"]).max() <= 1 / np.sqrt(32)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("simple_cnn", {}),
        ("resnet18", {"zero_init_residual": True, "head": "mlp"}),
        ("efficientnetv2_s", {}),
    ],
)
def test_the_numpy_draw_follows_torchs_initialisation(model, options):
    """Every tensor: the numpy draw and PyTorch's own initialisation come from the same distribution
    (constants equal, two-sample Kolmogorov-Smirnov otherwise), so the shared start is the reference's."""
    from scipy.stats import ks_2samp

    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework
    from medbench.frameworks.families import resolve_model

    fw = get_framework("torch")
    fw.configure(RuntimeConfig(threads=1, device="cpu"))
    built = fw.build_model(model, num_classes=7, in_channels=3, image_size=28, seed=0, **options)
    torch_state = fw.state_dict(built)
    family, resolved = resolve_model(model, options)
    drawn = draw_state(family, resolved, torch_state, seed=0, image_size=28)
    rules = reference_rules(family, resolved, {k: v.shape for k, v in torch_state.items()}, image_size=28)
    checked = 0
    for key, ours in drawn.items():
        theirs, rule = torch_state[key], rules[key]
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, key
        if rule.kind == "constant":
            np.testing.assert_array_equal(theirs, ours, err_msg=key)  # torch's constants are the rule's
            continue
        if rule.kind == "uniform":
            assert np.abs(theirs).max() <= rule.scale and np.abs(ours).max() <= rule.scale, key
        if ours.size >= 200:
            p = ks_2samp(ours.ravel(), theirs.ravel()).pvalue
            assert p > 1e-4, f"{key}: numpy and torch draws differ in distribution (KS p = {p:.2g})"
            checked += 1
    assert checked >= 3


# ---- the noise stream, without a framework -----------------------------------------------------------------
def test_masks_are_inverted_dropout_and_a_pure_function_of_seed_epoch_step():
    sites = (
        NoiseSite("dropout", "dropout", 0.25, (512,)),
        NoiseSite("b.sd", "stochastic_depth", 0.5, (1, 1, 1)),
    )
    stream = NoiseStream(sites, seed=3)
    masks = stream.masks(2, 5, 64)
    assert masks["dropout"].shape == (64, 512) and masks["b.sd"].shape == (64, 1, 1, 1)
    assert set(np.unique(masks["dropout"])) == {0.0, np.float32(1) / np.float32(0.75)}
    assert abs((masks["dropout"] == 0).mean() - 0.25) < 0.01  # drop probability p
    again = NoiseStream(sites, seed=3).masks(2, 5, 64)  # a fresh stream (a resumed run) draws the same
    for name in masks:
        np.testing.assert_array_equal(masks[name], again[name])
    assert not np.array_equal(stream.masks(2, 6, 64)["dropout"], masks["dropout"])
    assert not np.array_equal(NoiseStream(sites, seed=4).masks(2, 5, 64)["dropout"], masks["dropout"])
    assert site_mask(sites[0], np.random.default_rng(0), 3).dtype == np.float32


def test_noise_sites_come_from_the_family_config():
    assert noise_sites("simple_cnn", {"dropout": 0.5}, image_size=28) == (
        NoiseSite("dropout", "dropout", 0.5, (128,)),
    )
    assert noise_sites("simple_cnn", {"dropout": 0.0}, image_size=28) == ()
    assert noise_sites("resnet", {"block": "bottleneck", "layers": (3, 4, 6, 3)}, image_size=28) == ()
    mlp = noise_sites("resnet", {"block": "bottleneck", "layers": (3, 4, 6, 3), "head": "mlp"}, image_size=28)
    assert mlp == (NoiseSite("fc.0", "dropout", 0.5, (2048,)),)
    eff = noise_sites("efficientnetv2", {"variant": "s"}, image_size=28)
    assert eff[-1] == NoiseSite("classifier.0", "dropout", 0.2, (1280,))
    depth = [s for s in eff if s.kind == "stochastic_depth"]
    # residual blocks only (stride 1, same width), and not the first, whose probability is 0
    assert len(depth) == 34 and depth[0].name == "features.1.1.stochastic_depth" and depth[-1].p < 0.2
    assert "features.2.0.stochastic_depth" not in {s.name for s in depth}  # stride 2: no residual branch


def test_a_layer_sees_a_mask_only_inside_the_handover():
    assert current_mask("dropout") is None
    with shared_masks({"dropout": "m"}):
        assert current_mask("dropout") == "m" and current_mask("other") is None and current_mask(None) is None
        with shared_masks(None):
            assert current_mask("dropout") is None
    assert current_mask("dropout") is None


# ---- config -------------------------------------------------------------------------------------------------
def test_shared_is_the_default_and_changes_the_hash_native_keeps_the_old_one():
    base = {"model": "simple_cnn", "data": {"dataset": "breastmnist"}}
    shared, native = parse_config(base), parse_config({**base, "init": "native", "noise": "native"})
    assert shared.init == "shared" and shared.noise == "shared" and shared.recipe.trajectory_steps == 200
    old = native.to_dict()  # a config stored before the fields existed: no init, noise, trajectory_steps
    for key in ("init", "noise"):
        old.pop(key)
    old["recipe"].pop("trajectory_steps")
    from medbench.config import config_hash

    assert native.hash == config_hash(old)  # native runs keep the hashes of the runs before them
    assert shared.hash != native.hash  # the new default is a new behaviour: a new hash
    assert parse_config({**base, "init": "native"}).hash not in (shared.hash, native.hash)
    assert stored_config(old).init == "native" and stored_config(old).noise == "native"
    with pytest.raises(Exception, match="init"):
        parse_config({**base, "init": "torch"})


def test_train_flags_reach_the_config():
    from medbench.commands.config_input import build_config

    raw = build_config({}, {"init": "native", "noise": "shared"}, ["recipe.trajectory_steps=50"])
    config = RunConfig.model_validate(raw)
    assert (config.init, config.noise, config.recipe.trajectory_steps) == ("native", "shared", 50)


def test_experiment_files_take_the_same_fields(tmp_path):
    from medbench.orchestration.experiments import expand, load_experiment

    path = tmp_path / "study.toml"
    path.write_text(
        'name = "study"\n[grid]\ndatasets = ["breastmnist"]\nsizes = [28]\nframeworks = ["torch", "jax"]\n'
        'models = ["simple_cnn"]\nseeds = [0]\n[base]\ninit = "native"\n[base.recipe]\ntrajectory_steps = 40\n'
        '[[variants]]\nname = "shared"\nset = {init = "shared"}\n'
        '[[variants]]\nname = "native"\nset = {noise = "native"}\n'
    )
    trials = expand(load_experiment(path))
    got = {(t.variant, t.config.framework): (t.config.init, t.config.noise) for t in trials}
    assert got[("shared", "jax")] == ("shared", "shared") and got[("native", "torch")] == ("native", "native")
    assert {t.config.recipe.trajectory_steps for t in trials} == {40}


# ---- across the three frameworks -------------------------------------------------------------------------
def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.keras
@pytest.mark.keras_jax
@pytest.mark.keras_torch
def test_shared_init_gives_bit_identical_starts_in_every_framework(tmp_path):
    # the five children side by side: each is mostly its framework's import and model building
    outs = {framework: tmp_path / f"{framework}.npz" for framework in FRAMEWORKS}
    pending = {
        framework: harness.start(
            "tests.frameworks._shared_start_worker:main", framework=framework, out=str(out)
        )
        for framework, out in outs.items()
    }
    states = {}
    for framework, out in outs.items():
        harness.result(pending[framework], timeout_s=600, what=f"shared start in {framework}")
        with np.load(out) as saved:
            states[framework] = {k: saved[k] for k in saved.files}
    reference = states["torch"]
    for case in ("simple_cnn", "resnet18", "resnet18_mlp_zero"):
        assert f"{case}/conv1.weight" in reference or f"{case}/fc1.weight" in reference
    for framework in OTHERS:
        state = states[framework]
        # torch alone keeps num_batches_tracked (a counter, not a weight); everything else is there
        assert set(reference) - set(state) == {k for k in reference if k.endswith("num_batches_tracked")}
        assert set(state) <= set(reference)
        for key, value in state.items():
            assert value.dtype == reference[key].dtype, key
            np.testing.assert_array_equal(value, reference[key], err_msg=f"{framework} {key}")
    sites = {fw: str(states[fw]["resnet18_mlp_zero/noise_sites"]) for fw in FRAMEWORKS}
    assert set(sites.values()) == {json.dumps({"fc.0": 0.5})}


def _train(home: Path, framework: str, *extra: str) -> list[float]:
    """20 steps of simple_cnn with dropout 0.5 on BreastMNIST: the per-step losses stored with the run.

    SGD (momentum 0.9, lr 0.01) rather than the official Adam: Adam's first steps move every weight by about
    ``lr`` in the direction of its gradient's *sign*, also where the gradient is at the level of float rounding,
    so rounding alone parts the frameworks by ~1e-3 within 20 steps (measured: see report/trajectory.py);
    with SGD they stay within ~2e-7, so rtol 1e-5 tests the shared masks and not the optimizer.
    """
    command = [
        sys.executable, "-m", "medbench.cli", "train", "-q", "-f", framework, "-m", "simple_cnn",
        "-d", "breastmnist", "--data-file", str(BREAST), "-b", "16", "-e", "1", "--max-steps-per-epoch", "20",
        "--seed", "5", "--schedule", "constant", "--optimizer", "sgd", "--lr", "0.01",
        "--set", "model_options.dropout=0.5",
        "--set", "recipe.evaluate_train=false", *extra,
    ]  # fmt: skip
    env = {**_env(), "MEDBENCH_HOME": str(home)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = [r for r in ResultsStore(home / "results.sqlite").list_runs() if r.framework == framework]
    return runs[0].metrics["trajectory"]


@pytest.fixture(scope="module")
def torch_noise_losses(tmp_path_factory) -> np.ndarray:
    """The reference run's 20 losses, trained once for every framework compared with it."""
    losses = np.array(_train(tmp_path_factory.mktemp("noise_torch"), "torch"))
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert losses[0] != losses[-1]  # it learnt, so the later steps test the updates
    return losses


@pytest.mark.skipif(not BREAST.exists(), reason="needs ../shared/data/medmnist/breastmnist.npz")
@pytest.mark.torch
@pytest.mark.parametrize(
    "framework",
    [
        pytest.param("jax", marks=pytest.mark.jax),
        pytest.param("keras", marks=pytest.mark.keras),
        # Keras's other backends draw their masks through the same Keras code as keras: full suite only
        pytest.param("keras-jax", marks=[pytest.mark.keras_jax, pytest.mark.slow]),
        pytest.param("keras-torch", marks=[pytest.mark.keras_torch, pytest.mark.slow]),
    ],
)
def test_shared_noise_gives_the_same_losses_in_every_framework(framework, torch_noise_losses, tmp_path):
    losses = np.array(_train(tmp_path, framework))
    np.testing.assert_allclose(losses, torch_noise_losses, rtol=1e-5, err_msg=framework)


@pytest.mark.skipif(not BREAST.exists(), reason="needs ../shared/data/medmnist/breastmnist.npz")
@pytest.mark.torch
def test_native_init_and_noise_are_the_frameworks_own_draws(tmp_path):
    """--init native --noise native runs the code as it was: the start is torch's own seeded draw and the
    dropout masks torch's own RNG, which a shared run does not reproduce."""
    native = _train(tmp_path / "native", "torch", "--init", "native", "--noise", "native")
    # the same run by hand, without the training loop's shared machinery: torch.manual_seed, build, steps
    script = (
        "import json, sys, numpy as np\n"
        "from medbench.config import parse_config\n"
        "from medbench import training as t\n"
        "from medbench.frameworks import get_framework\n"
        "from medbench.config import OptimizerConfig, RuntimeConfig\n"
        "c = parse_config(json.loads(sys.argv[1]))\n"
        "fw = get_framework('torch'); fw.configure(RuntimeConfig())\n"
        "data = t.load_data(c); norm = t.normalization_for(c, data)\n"
        "batches = t.make_batches(c, data, 'train', normalization=norm, train=True)\n"
        "m = fw.build_model(c.model, seed=c.seed, **t.model_inputs(c, data.info), **c.model_options)\n"
        "tr = fw.create_trainer(m, optimizer=OptimizerConfig(name='sgd', lr=0.01))\n"
        "out = [tr.train_step(x, y, lr=0.01).loss for i, (x, y) in zip(range(20), batches.epoch(0))]\n"
        "print(json.dumps(out))\n"
    )
    config = {
        "framework": "torch",
        "model": "simple_cnn",
        "model_options": {"dropout": 0.5},
        "seed": 5,
        "data": {"dataset": "breastmnist", "data_file": str(BREAST)},
        "recipe": {"batch_size": 16, "optimizer": {"name": "sgd", "lr": 0.01}},
    }
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
        check=True,
    )
    by_hand = json.loads(result.stdout.strip().splitlines()[-1])
    assert native == by_hand  # bit for bit: the native path is the framework's own, untouched
    shared = _train(tmp_path / "shared", "torch")
    # the shared start and masks are another draw: the losses part at once (a check that can fail)
    assert not np.allclose(shared, native, rtol=1e-3)


# Stochastic depth lives only in EfficientNetV2's residual blocks: the whole model (64 px, so the last stage
# is 2x2 and BatchNorm's batch statistics stay well conditioned), 8 images a step, both kinds of noise at 0.5.
_DEPTH = {"model": "efficientnetv2_s", "options": {"dropout": 0.5, "stochastic_depth_prob": 0.5}, "size": 64,
          "batch": 8, "steps": 2, "seed": 2, "lr": 0.001}  # fmt: skip


def _depth_losses(tmp_path: Path, framework: str) -> dict[str, np.ndarray]:
    out = tmp_path / f"depth_{framework}.npz"
    harness.call(
        "tests.frameworks._shared_noise_worker:main",
        framework=framework,
        spec=_DEPTH,
        out=str(out),
        timeout_s=1200,
    )
    with np.load(out) as saved:
        return {k: saved[k] for k in saved.files}


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.keras
def test_shared_stochastic_depth_gives_the_same_losses_in_every_framework(tmp_path):
    """The shared stochastic-depth masks (one value per sample and residual block) reach every framework's
    blocks: the same start and masks give the same training losses, and other masks give other losses.

    Measured (torch vs JAX): the first loss agrees to 6e-6 relative, the second to 1e-4; after that
    EfficientNetV2-S on 8 random images amplifies float rounding by about 10x a step (1e-3, then 1e-2), so
    only the first two steps are compared. A framework drawing its own masks would be off by tens of percent
    at the first step already: keeping every block instead moves the first loss from 4.4 to 8.8.
    """
    got = {fw: _depth_losses(tmp_path, fw) for fw in FRAMEWORKS}
    reference = got["torch"]
    assert int(reference["depth_sites"]) == 34  # every residual block of EfficientNetV2-S draws
    assert abs(reference["losses"][0] / reference["losses_all_kept"][0] - 1) > 0.1  # the masks matter
    for framework in ("jax", "keras"):
        for key in ("losses", "losses_all_kept"):
            ours, theirs = got[framework][key], reference[key]
            np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4, err_msg=f"{framework} {key}, step 1")
            np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-3, err_msg=f"{framework} {key}, step 2")
