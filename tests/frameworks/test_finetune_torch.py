"""The PyTorch trainer's fine-tuning plans against ``torch.optim`` set up by hand, in this process.

PyTorch is the reference the JAX and Keras trainers are compared with (``test_training.py``), so its own
reading of a :class:`~medbench.frameworks.base.TrainPlan` is pinned here to what one would write by hand:
parameter groups at ``lr x scale``, frozen parameters outside the optimizer, a stage that joins later added
with ``add_param_group`` (fresh state, its own Adam step count), BatchNorm of frozen stages in eval mode.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from medbench.config import FinetuneConfig, OptimizerConfig
from medbench.errors import ConfigError, MedbenchError
from medbench.finetune import plan_for_epoch
from medbench.frameworks.base import ParamGroup, TrainPlan

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

OPTIMIZERS = [
    pytest.param(
        OptimizerConfig(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4), id="sgd"
    ),
    pytest.param(OptimizerConfig(name="adam", lr=1e-2, weight_decay=1e-3), id="adam_l2"),
    pytest.param(OptimizerConfig(name="adamw", lr=1e-2, weight_decay=0.05), id="adamw"),
]
# a linear probe first, then one more stage per epoch (blocks.1, then blocks.0) at 0.3 x the learning rate
GRADUAL = FinetuneConfig(trainable="head", unfreeze_every=1, backbone_lr_scale=0.3)
EPOCHS = [0, 0, 1, 1, 2]
LRS = [None, 0.5, None, 1.0, 0.25]  # factors of the spec's learning rate; None: keep the last one
HEAD, STAGES = ("fc1", "fc2"), ("blocks.1", "blocks.0")  # stages in the order they join


@pytest.fixture(scope="module")
def fw():
    from medbench.frameworks import get_framework

    return get_framework("torch")


def _model(fw, seed=0):
    model = fw.build_model(
        "simple_cnn",
        num_classes=3,
        in_channels=1,
        image_size=8,
        widths=(4, 8),
        hidden=8,
        dropout=0.0,
        seed=seed,
    )
    _randomise_norm(model, seed)
    return model


def _randomise_norm(model, seed) -> None:
    """BatchNorm weights and running statistics away from 1/0, so eval mode differs from training mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(0.3 * torch.randn(t.shape, generator=gen) + (1.0 if t is m.weight else 0.0))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def _batches(n, seed=1):
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal((6, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, (6, 1))) for _ in range(n)
    ]


def _lrs(spec):
    return [None if f is None else spec.lr * f for f in LRS]


def _params(model, prefix):
    return [p for name, p in model.named_parameters() if name.startswith(prefix + ".")]


def _by_hand(model, spec, batches):
    """The same schedule written with torch.optim only: the reference for the trainer."""
    from medbench.frameworks.torch.train import create_optimizer

    head = [p for prefix in HEAD for p in _params(model, prefix)]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head:
        p.requires_grad_(True)
    opt = create_optimizer(head, spec)
    lr, joined, losses = spec.lr, 0, []
    for (x, y), step_lr, epoch in zip(batches, _lrs(spec), EPOCHS, strict=True):
        while joined < epoch:  # gradual unfreezing: the next stage down joins with fresh state
            stage = _params(model, STAGES[joined])
            for p in stage:
                p.requires_grad_(True)
            opt.add_param_group({"params": stage, "lr": lr * GRADUAL.backbone_lr_scale})
            joined += 1
        if step_lr is not None:
            lr = step_lr
            opt.param_groups[0]["lr"] = lr
            for group in opt.param_groups[1:]:
                group["lr"] = lr * GRADUAL.backbone_lr_scale
        model.train()
        for name in STAGES[joined:]:  # BatchNorm of frozen stages: inference mode
            model.get_submodule(f"{name}.0.bn").eval()
        opt.zero_grad(set_to_none=True)
        logits = model(torch.from_numpy(x).permute(0, 3, 1, 2))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[:, 0]))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, opt


def _with_trainer(fw, model, spec, batches):
    keys = list(fw.state_dict(model))
    plans = [plan_for_epoch("simple_cnn", keys, GRADUAL, epoch) for epoch in EPOCHS]
    trainer = fw.create_trainer(model, optimizer=spec, plan=plans[0])
    losses = []
    for i, ((x, y), lr) in enumerate(zip(batches, _lrs(spec), strict=True)):
        if i and plans[i] != plans[i - 1]:
            trainer.set_plan(plans[i])
        losses.append(trainer.train_step(x, y, lr=lr).loss)
    return losses, trainer


def _assert_same_state(got, expected):
    assert list(got) == list(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7, msg=key)


@pytest.mark.parametrize("spec", OPTIMIZERS)
def test_gradual_unfreezing_equals_add_param_group_by_hand(fw, spec):
    batches = _batches(len(EPOCHS))
    model = _model(fw)
    reference = copy.deepcopy(model)
    start = copy.deepcopy(model.state_dict())
    want_losses, opt = _by_hand(reference, spec, batches)
    got_losses, trainer = _with_trainer(fw, model, spec, batches)

    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-6)
    _assert_same_state(model.state_dict(), reference.state_dict())
    # the schedule really did something at each level: the stage that joined last moved, the head moved more
    assert not torch.equal(model.state_dict()["blocks.0.0.conv.weight"], start["blocks.0.0.conv.weight"])
    # the groups, their learning rates and their optimizer state are torch's own
    assert [g["name"] for g in trainer.optimizer.param_groups] == ["head", "blocks.1", "blocks.0"]
    for got, want in zip(trainer.optimizer.param_groups, opt.param_groups, strict=True):
        assert got["lr"] == want["lr"]
        assert len(got["params"]) == len(want["params"])
    if spec.name != "sgd":  # Adam's per-parameter step count: 5 steps, 3 since epoch 1, 1 since epoch 2
        steps = [int(trainer.optimizer.state[g["params"][0]]["step"]) for g in trainer.optimizer.param_groups]
        assert steps == [5, 3, 1]


def test_frozen_parameters_and_norm_statistics_stay_put(fw):
    """During a linear probe nothing below the head moves: weights, BatchNorm statistics, optimizer state."""
    model = _model(fw)
    start = copy.deepcopy(model.state_dict())
    plan = plan_for_epoch("simple_cnn", list(start), GRADUAL, 0)
    trainer = fw.create_trainer(
        model, optimizer=OptimizerConfig(name="adam", lr=1e-2, weight_decay=0.1), plan=plan
    )
    for x, y in _batches(2):
        trainer.train_step(x, y)
    after = model.state_dict()
    moved = sorted(k for k in start if not torch.equal(after[k], start[k]))
    assert moved == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    assert fw.count_params(model) == sum(start[k].numel() for k in moved)  # requires_grad follows the plan
    assert len(trainer.optimizer.state) == 4


def test_a_group_that_leaves_and_returns_starts_fresh(fw):
    """Dropped from the plan a group is frozen and loses its state; back again it is a new group."""
    model = _model(fw)
    keys = list(fw.state_dict(model))
    head = plan_for_epoch("simple_cnn", keys, GRADUAL, 0)
    both = plan_for_epoch("simple_cnn", keys, GRADUAL, 1)
    trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="adam", lr=1e-2), plan=both)
    batches = _batches(4)
    trainer.train_step(*batches[0])
    trainer.set_plan(head)
    stage = _params(model, "blocks.1")
    before = [p.detach().clone() for p in stage]
    trainer.train_step(*batches[1])
    assert all(torch.equal(p, b) for p, b in zip(stage, before, strict=True))
    assert not any(p in trainer.optimizer.state for p in stage) and not any(p.requires_grad for p in stage)
    trainer.set_plan(both)
    trainer.train_step(*batches[2])
    steps = {
        g["name"]: int(trainer.optimizer.state[g["params"][0]]["step"])
        for g in trainer.optimizer.param_groups
    }
    assert steps == {"head": 3, "blocks.1": 1}


def test_one_group_at_scale_one_is_the_plain_trainer_bit_for_bit(fw):
    batches = _batches(3)
    spec = OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3)
    plain, planned = _model(fw), _model(fw)
    everything = TrainPlan((ParamGroup("all", tuple(name for name, _ in planned.named_parameters())),))
    trainers = [
        fw.create_trainer(plain, optimizer=spec),
        fw.create_trainer(planned, optimizer=spec, plan=everything),
    ]
    for (x, y), lr in zip(batches, [None, 0.05, 0.2], strict=True):
        assert trainers[0].train_step(x, y, lr=lr).loss == trainers[1].train_step(x, y, lr=lr).loss
    for key, value in plain.state_dict().items():
        assert torch.equal(planned.state_dict()[key], value), key


def test_frozen_norm_runs_in_inference_mode(fw):
    """``frozen_norm`` BatchNorm layers normalise with running statistics and leave them as they were."""
    model = _model(fw)
    names = tuple(name for name, _ in model.named_parameters())
    plan = TrainPlan((ParamGroup("all", names, 0.5),), frozen_norm=("blocks.0.0.bn",))
    trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="sgd", lr=0.1), plan=plan)
    bn0, bn1 = model.get_submodule("blocks.0.0.bn"), model.get_submodule("blocks.1.0.bn")
    stats = [copy.deepcopy(bn.running_mean) for bn in (bn0, bn1)]
    seen = {}

    def record(name):
        def hook(module, inputs, output) -> None:  # returning None keeps the output
            seen[name] = module.training

        return hook

    hooks = [bn.register_forward_hook(record(n)) for n, bn in (("0", bn0), ("1", bn1))]
    trainer.train_step(*_batches(1)[0])
    for hook in hooks:
        hook.remove()
    assert seen == {"0": False, "1": True}
    assert torch.equal(bn0.running_mean, stats[0]) and not torch.equal(bn1.running_mean, stats[1])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_state_round_trip_with_a_plan(fw, tmp_path):
    """Saved after a change of plan, loaded into a trainer created with the plan in force: the same steps."""
    spec = OptimizerConfig(name="adam", lr=1e-2, weight_decay=1e-3)
    batches = _batches(len(EPOCHS))
    straight = _model(fw)
    _, trainer = _with_trainer(fw, straight, spec, batches)
    resumed = _model(fw)
    keys = list(fw.state_dict(resumed))
    plans = [plan_for_epoch("simple_cnn", keys, GRADUAL, epoch) for epoch in EPOCHS]
    first = fw.create_trainer(resumed, optimizer=spec, plan=plans[0])
    for i in range(3):
        if i and plans[i] != plans[i - 1]:
            first.set_plan(plans[i])
        first.train_step(*batches[i], lr=_lrs(spec)[i])
    first.save_state(tmp_path)

    with pytest.raises(MedbenchError, match="fine-tuning plan"):
        fw.create_trainer(_model(fw), optimizer=spec, plan=plans[0]).load_state(tmp_path)

    again = _model(fw, seed=5)
    second = fw.create_trainer(again, optimizer=spec, plan=plans[2])
    second.load_state(tmp_path)
    for i in range(3, len(EPOCHS)):
        if plans[i] != plans[i - 1]:
            second.set_plan(plans[i])
        second.train_step(*batches[i], lr=_lrs(spec)[i])
    for key, value in straight.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (TrainPlan((ParamGroup("head", ("fc9.weight",)),)), "does not have"),
        (TrainPlan((ParamGroup("a", ("fc1.weight",)), ParamGroup("a", ("fc2.weight",)))), "names repeat"),
        (TrainPlan((ParamGroup("a", ("fc1.weight",)), ParamGroup("b", ("fc1.weight",)))), "more than one"),
        (TrainPlan((ParamGroup("head", ()),)), "no parameter trains"),
        (TrainPlan((ParamGroup("head", ("fc1.weight",)),), frozen_norm=("blocks.0.0.conv",)), "no BatchNorm"),
    ],
)
def test_a_plan_that_does_not_fit_the_model_is_a_config_error(fw, plan, message):
    with pytest.raises(ConfigError, match=message):
        fw.create_trainer(_model(fw), optimizer=OptimizerConfig(name="sgd", lr=0.1), plan=plan)


# ---- the mlp head ------------------------------------------------------------------------------------------
def test_resnet_mlp_head(fw):
    model = fw.build_model(
        "resnet18", num_classes=5, in_channels=3, image_size=28, head="mlp", head_hidden=32
    )
    fc = model.fc
    assert [type(m).__name__ for m in fc] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert fc[0].p == 0.5 and (fc[1].in_features, fc[1].out_features, fc[3].out_features) == (512, 32, 5)
    bound = 1 / np.sqrt(512)  # nn.Linear's default, as torchvision's fc
    assert bound * 0.9 < float(fc[1].weight.detach().abs().max()) <= bound
    linear = fw.build_model("resnet18", num_classes=5, in_channels=3, image_size=28)
    assert fw.count_params(model) - fw.count_params(linear) == (512 * 32 + 32 + 32 * 5 + 5) - (512 * 5 + 5)
    mlp_flops = fw.flops_per_image(model, image_size=28, in_channels=3)
    assert mlp_flops - fw.flops_per_image(linear, image_size=28, in_channels=3) == 2 * (
        512 * 32 + 32 * 5 - 512 * 5
    )


def test_efficientnet_mlp_head(fw):
    model = fw.build_model(
        "efficientnetv2_s",
        num_classes=4,
        in_channels=3,
        image_size=32,
        head="mlp",
        head_hidden=64,
        dropout=0.1,
    )
    head = model.classifier
    assert [type(m).__name__ for m in head] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert (
        head[0].p == 0.1
        and tuple(head[1].weight.shape) == (64, 1280)
        and tuple(head[3].weight.shape) == (4, 64)
    )
    for layer in (head[1], head[3]):  # torchvision's classifier init: U(+-1/sqrt(out)), zero bias
        bound = 1 / np.sqrt(layer.out_features)
        assert bound * 0.9 < float(layer.weight.detach().abs().max()) <= bound
        assert not layer.bias.any()
    logits = fw.predict(model, np.zeros((2, 32, 32, 3), np.float32))
    assert logits.shape == (2, 4)
