"""The JAX trainer's fine-tuning plans, in JAX alone: what each part of a plan must do to the numbers.

The comparison with PyTorch (the reference) runs through the harness in ``test_training.py``; here each
rule of :class:`~medbench.frameworks.base.TrainPlan` is pinned on its own, on a tiny SimpleCNN: frozen
parameters and frozen BatchNorm statistics stay bit for bit, a group's learning-rate scale scales its step,
a new group starts Adam at step 1 while the others keep counting, and a saved state resumes exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from medbench.config import FinetuneConfig, OptimizerConfig
from medbench.errors import ConfigError
from medbench.finetune import plan_for_epoch
from medbench.frameworks.base import ParamGroup, TrainPlan

pytest.importorskip("jax")
pytest.importorskip("flax")

pytestmark = pytest.mark.jax

HEAD = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")
BLOCK0 = ("blocks.0.0.conv.weight", "blocks.0.0.bn.weight", "blocks.0.0.bn.bias")
BLOCK1 = ("blocks.1.0.conv.weight", "blocks.1.0.bn.weight", "blocks.1.0.bn.bias")
ADAM = OptimizerConfig(name="adam", lr=1e-2, weight_decay=1e-3)


@pytest.fixture(scope="module")
def fw():
    from medbench.frameworks import get_framework

    return get_framework("jax")


def _model(fw, seed=0):
    return fw.build_model(
        "simple_cnn",
        num_classes=3,
        in_channels=1,
        image_size=8,
        widths=(4, 8),
        hidden=8,
        dropout=0.0,
        seed=seed,
    )


def _batches(n, seed=1):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((6, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, (6, 1))) for _ in range(n)
    ]


def _train(trainer, batches, lrs=None):
    lrs = lrs or [None] * len(batches)
    return [trainer.train_step(x, y, lr=lr).loss for (x, y), lr in zip(batches, lrs, strict=True)]


def _moved(before: dict, after: dict) -> set[str]:
    return {k for k in before if not np.array_equal(before[k], after[k])}


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels.ravel()].mean())


def _opt_state(trainer, group: str):
    """(Adam step count, first moments) of one group of a JAX trainer."""
    import jax
    import optax

    state = trainer._opt_states[group]
    (adam,) = [
        x
        for x in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
        if isinstance(x, optax.ScaleByAdamState)
    ]
    return int(adam.count), [np.asarray(x) for x in jax.tree.leaves(adam.mu)]


def test_one_group_of_every_parameter_is_the_plain_trainer(fw):
    """The group machinery adds nothing: one group of everything at scale 1 = no plan, bit for bit."""
    model = _model(fw)
    names = [k for k in fw.state_dict(model) if not k.endswith(("running_mean", "running_var"))]
    results = []
    for plan in (None, TrainPlan((ParamGroup("everything", tuple(names)),))):
        trainer = fw.create_trainer(_model(fw), optimizer=ADAM, plan=plan)
        losses = _train(trainer, _batches(3), [None, 5e-3, 2e-2])
        results.append((losses, fw.state_dict(trainer.model)))
    (plain_losses, plain), (group_losses, grouped) = results
    assert plain_losses == group_losses
    assert _moved(plain, grouped) == set()
    assert len(_moved(fw.state_dict(model), plain)) == len(plain)  # everything trained, statistics too


def test_frozen_parameters_and_frozen_norm_stay_bit_identical(fw):
    model = _model(fw)
    before = fw.state_dict(model)
    plan = TrainPlan(
        (ParamGroup("head", HEAD), ParamGroup("top", BLOCK1[1:])), frozen_norm=("blocks.0.0.bn",)
    )
    sgd = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    trainer = fw.create_trainer(model, optimizer=sgd, plan=plan)
    _train(trainer, _batches(3))
    after = fw.state_dict(trainer.model)
    # trained: the groups, and the running statistics of the BatchNorm left in training mode
    assert _moved(before, after) == {
        *HEAD,
        *BLOCK1[1:],
        "blocks.1.0.bn.running_mean",
        "blocks.1.0.bn.running_var",
    }


def _convs_in_step(trainer, batch) -> int:
    """How many convolutions one training step's program runs (forward, and backward where needed)."""
    import jax

    x, y = batch
    lrs = {name: np.float32(0.1) for name in trainer._scales}
    args = (
        trainer._groups,
        trainer._frozen,
        trainer._rest,
        trainer._opt_states,
        x,
        y.ravel().astype(np.int32),
    )
    return str(jax.make_jaxpr(trainer._step)(*args, lrs, None)).count("conv_general_dilated")


def test_frozen_stages_are_not_differentiated(fw):
    """SimpleCNN has two convs. A linear probe runs them forward only; training the top block adds its
    kernel's gradient but still nothing below it; training everything adds both kernel gradients and the
    gradient flowing into the top block's input."""
    batch = _batches(1)[0]
    counts = []
    for groups in ((HEAD,), (HEAD, BLOCK1), (HEAD, BLOCK1, BLOCK0)):
        plan = TrainPlan(tuple(ParamGroup(f"g{i}", g) for i, g in enumerate(groups)))
        counts.append(_convs_in_step(fw.create_trainer(_model(fw), optimizer=ADAM, plan=plan), batch))
    assert counts == [2, 3, 5]


def test_frozen_norm_uses_running_statistics_in_training_steps(fw):
    """Every BatchNorm frozen, no dropout: a training step's loss is the eval-mode loss before it."""
    x, y = _batches(1)[0]
    for frozen_norm in (("blocks.0.0.bn", "blocks.1.0.bn"), ()):
        plan = TrainPlan((ParamGroup("head", HEAD),), frozen_norm=frozen_norm)
        trainer = fw.create_trainer(_model(fw), optimizer=ADAM, plan=plan)
        expected = _cross_entropy(trainer.eval_logits(x), y)
        loss = trainer.train_step(x, y).loss
        if frozen_norm:
            assert loss == pytest.approx(expected, rel=1e-6)
        else:  # batch statistics: another function than the eval-mode one
            assert abs(loss - expected) > 1e-3


def test_lr_scale_half_moves_half_as_far(fw):
    """Plain SGD: the step is ``-lr x scale x g``; the first step's gradients do not depend on the plan."""
    sgd = OptimizerConfig(name="sgd", lr=0.25, momentum=0.0)
    start = fw.state_dict(_model(fw))
    deltas = {}
    for scale in (1.0, 0.5):
        plan = TrainPlan((ParamGroup("head", HEAD), ParamGroup("backbone", BLOCK0 + BLOCK1, scale)))
        trainer = fw.create_trainer(_model(fw), optimizer=sgd, plan=plan)
        _train(trainer, _batches(1))
        after = fw.state_dict(trainer.model)
        deltas[scale] = {k: after[k].astype(np.float64) - start[k] for k in HEAD + BLOCK0 + BLOCK1}
    for k in HEAD:  # the head's scale is 1 in both runs
        assert np.array_equal(deltas[0.5][k], deltas[1.0][k]), k
    for k in BLOCK0 + BLOCK1:
        full, half = deltas[1.0][k], deltas[0.5][k]
        assert np.abs(full).max() > 1e-4, k
        # exact but for the rounding of w + update, a few float32 ulps of w
        np.testing.assert_allclose(half, 0.5 * full, rtol=0, atol=4 * np.spacing(np.abs(start[k]).max()))


def test_set_plan_keeps_surviving_groups_and_starts_new_ones_fresh(fw):
    scale = 0.3
    trainer = fw.create_trainer(_model(fw), optimizer=ADAM, plan=TrainPlan((ParamGroup("head", HEAD),)))
    batches = _batches(4)
    _train(trainer, batches[:3])
    count, moments = _opt_state(trainer, "head")
    assert count == 3
    before = fw.state_dict(trainer.model)

    trainer.set_plan(TrainPlan((ParamGroup("head", HEAD), ParamGroup("blocks.1", BLOCK1, scale))))
    count_kept, moments_kept = _opt_state(trainer, "head")
    assert count_kept == 3 and all(np.array_equal(a, b) for a, b in zip(moments, moments_kept, strict=True))
    count_new, moments_new = _opt_state(trainer, "blocks.1")
    assert count_new == 0 and all(not m.any() for m in moments_new)

    trainer.train_step(*batches[3])
    assert _opt_state(trainer, "head")[0] == 4 and _opt_state(trainer, "blocks.1")[0] == 1
    after = fw.state_dict(trainer.model)
    assert _moved(before, after) >= {*HEAD, *BLOCK1} and not _moved(before, after) & set(BLOCK0)
    # Adam's bias-corrected first step is lr x g / (|g| + eps) (L2 joins g before): about +-lr x scale
    step = np.abs(np.concatenate([(after[k].astype(np.float64) - before[k]).ravel() for k in BLOCK1]))
    assert np.median(step) == pytest.approx(ADAM.lr * scale, rel=1e-3)
    assert step.max() <= ADAM.lr * scale * (1 + 1e-3)


def test_gradual_unfreezing_joins_stages_with_their_own_step_count(fw):
    """The plans medbench.finetune computes: a linear probe, then one stage more per epoch."""
    model = _model(fw)
    config = FinetuneConfig(trainable="head", unfreeze_every=1, backbone_lr_scale=0.3)
    keys = list(fw.state_dict(model))
    plans = [plan_for_epoch("simple_cnn", keys, config, epoch) for epoch in range(3)]
    assert [[g.name for g in p.groups] for p in plans] == [
        ["head"],
        ["head", "blocks.1"],
        ["head", "blocks.1", "blocks.0"],
    ]
    trainer = fw.create_trainer(
        model, optimizer=OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.05), plan=plans[0]
    )
    for plan, batch in zip(plans, _batches(3), strict=True):
        if plan is not plans[0]:
            trainer.set_plan(plan)
        trainer.train_step(*batch)
    assert [_opt_state(trainer, g)[0] for g in ("head", "blocks.1", "blocks.0")] == [3, 2, 1]


def test_save_and_load_state_with_a_plan_resume_exactly(fw, tmp_path):
    plan = TrainPlan(
        (ParamGroup("head", HEAD), ParamGroup("blocks.1", BLOCK1, 0.1)), frozen_norm=("blocks.0.0.bn",)
    )
    batches = _batches(4)
    first = fw.create_trainer(_model(fw), optimizer=ADAM, plan=plan)
    _train(first, batches[:2])
    first.save_state(tmp_path / "state")

    resumed = fw.create_trainer(_model(fw, seed=5), optimizer=ADAM, plan=plan)  # other weights, overwritten
    resumed.load_state(tmp_path / "state")
    assert _train(first, batches[2:]) == _train(resumed, batches[2:])
    a, b = fw.state_dict(first.model), fw.state_dict(resumed.model)
    assert _moved(a, b) == set()
    assert _opt_state(resumed, "head")[0] == 4

    other = fw.create_trainer(_model(fw), optimizer=ADAM, plan=TrainPlan((ParamGroup("head", HEAD),)))
    with pytest.raises(ConfigError, match="does not fit"):
        other.load_state(tmp_path / "state")


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(TrainPlan((ParamGroup("head", ("fc9.weight",)),)), id="unknown_parameter"),
        pytest.param(TrainPlan((ParamGroup("a", HEAD), ParamGroup("b", HEAD[:1]))), id="in_two_groups"),
        pytest.param(TrainPlan((ParamGroup("a", HEAD[:2]), ParamGroup("a", HEAD[2:]))), id="name_twice"),
        pytest.param(TrainPlan((ParamGroup("a", HEAD),), frozen_norm=("blocks.0.0.conv",)), id="not_a_norm"),
        pytest.param(TrainPlan((ParamGroup("a", ()),)), id="nothing_trains"),
        pytest.param(TrainPlan((ParamGroup("a", ("blocks.0.0.bn.running_mean",)),)), id="a_statistic"),
    ],
)
def test_plans_that_do_not_fit_the_model_are_refused(fw, plan):
    with pytest.raises(ConfigError):
        fw.create_trainer(_model(fw), optimizer=ADAM, plan=plan)


def test_a_group_cannot_change_its_parameters_and_keep_its_name(fw):
    trainer = fw.create_trainer(_model(fw), optimizer=ADAM, plan=TrainPlan((ParamGroup("head", HEAD),)))
    with pytest.raises(ConfigError, match="new name"):
        trainer.set_plan(TrainPlan((ParamGroup("head", HEAD + BLOCK1),)))


# ---- the mlp head ----------------------------------------------------------------------------------------
def _check_mlp_head(state: dict, head: str, features: int, hidden: int, classes: int, bound) -> None:
    assert {k: v.shape for k, v in state.items() if k.split(".")[0] == head} == {
        f"{head}.1.weight": (hidden, features),
        f"{head}.1.bias": (hidden,),
        f"{head}.3.weight": (classes, hidden),
        f"{head}.3.bias": (classes,),
    }
    for layer, (fan_in, fan_out) in (("1", (features, hidden)), ("3", (hidden, classes))):
        w, b = state[f"{head}.{layer}.weight"], state[f"{head}.{layer}.bias"]
        limit = bound(fan_in, fan_out)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit, (head, layer)
        assert np.abs(b).max() <= limit


def test_resnet_mlp_head_has_torch_names_and_nn_linear_init(fw):
    model = fw.build_model(
        "resnet18",
        num_classes=5,
        in_channels=3,
        image_size=28,
        layers=(1, 1, 1, 1),
        head="mlp",
        head_hidden=64,
    )
    state = fw.state_dict(model)
    _check_mlp_head(state, "fc", 512, 64, 5, lambda fan_in, _: 1 / np.sqrt(fan_in))
    assert np.abs(state["fc.1.bias"]).max() > 0  # nn.Linear's bias is drawn, not zero
    assert fw.predict(model, np.zeros((2, 28, 28, 3), np.float32)).shape == (2, 5)


@pytest.mark.slow
def test_efficientnet_mlp_head_has_torch_names_and_torchvision_init(fw):
    model = fw.build_model("efficientnetv2_s", num_classes=4, in_channels=3, image_size=32, head="mlp")
    state = fw.state_dict(model)
    _check_mlp_head(state, "classifier", 1280, 512, 4, lambda _, fan_out: 1 / np.sqrt(fan_out))
    assert not state["classifier.1.bias"].any() and not state["classifier.3.bias"].any()
