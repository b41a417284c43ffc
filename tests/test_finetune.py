"""Fine-tuning plans from PyTorch parameter names: stages, presets, gradual unfreezing, frozen BatchNorm."""

from __future__ import annotations

import pytest

from medbench.config import FinetuneConfig, parse_config
from medbench.errors import ConfigError
from medbench.finetune import PRESETS, describe, plan_for_epoch, preset, stages
from medbench.orchestration.experiments import ExperimentSpec, expand

# a ResNet's names in state_dict order (one block per stage is enough for the rules)
RESNET = [
    "conv1.weight",
    *[f"bn1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")],
    *[
        key
        for i in range(1, 5)
        for key in (
            f"layer{i}.0.conv1.weight",
            f"layer{i}.0.bn1.weight",
            f"layer{i}.0.bn1.bias",
            f"layer{i}.0.bn1.running_mean",
            f"layer{i}.0.bn1.running_var",
        )
    ],
    "fc.1.weight",
    "fc.1.bias",
    "fc.3.weight",
    "fc.3.bias",
]
EFFNET = [
    "features.0.0.weight",
    "features.0.1.weight",
    "features.0.1.running_mean",
    "features.2.0.block.0.0.weight",
    "features.10.0.weight",
    "classifier.1.weight",
    "classifier.1.bias",
]


def _trainable(plan) -> set[str]:
    return set(plan.trainable)


def test_stages_run_bottom_to_top_and_exclude_running_statistics():
    names = [name for name, _ in stages("resnet", RESNET)]
    assert names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert dict(stages("resnet", RESNET))["stem"] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    # numeric, not lexical, order: features.10 sits above features.2
    assert [n for n, _ in stages("efficientnetv2", EFFNET)] == ["features.0", "features.2", "features.10"]


def test_default_config_needs_no_plan():
    assert plan_for_epoch("resnet", RESNET, FinetuneConfig(), 0) is None
    assert plan_for_epoch("resnet", RESNET, preset("full"), 5) is None


def test_linear_probe_trains_only_the_head_with_every_batchnorm_frozen():
    plan = plan_for_epoch("resnet", RESNET, preset("linear_probe"), 0)
    assert _trainable(plan) == {"fc.1.weight", "fc.1.bias", "fc.3.weight", "fc.3.bias"}
    assert plan.frozen_norm == ("bn1", "layer1.0.bn1", "layer2.0.bn1", "layer3.0.bn1", "layer4.0.bn1")


def test_top_stages_train_with_their_batchnorm_and_the_backbone_scale():
    plan = plan_for_epoch("resnet", RESNET, preset("top2", backbone_lr_scale=0.1), 0)
    assert [g.name for g in plan.groups] == ["head", "layer4", "layer3"]
    assert {g.name: g.lr_scale for g in plan.groups} == {"head": 1.0, "layer4": 0.1, "layer3": 0.1}
    assert "layer4.0.bn1.weight" in plan.trainable and "layer2.0.conv1.weight" not in plan.trainable
    assert plan.frozen_norm == ("bn1", "layer1.0.bn1", "layer2.0.bn1")


def test_gradual_unfreezing_adds_one_stage_from_the_top_per_period():
    config = preset("linear_probe", unfreeze_every=2)
    groups = [[g.name for g in plan_for_epoch("resnet", RESNET, config, e).groups] for e in range(12)]
    assert groups[0] == groups[1] == ["head"]
    assert groups[2] == ["head", "layer4"]
    assert groups[4] == ["head", "layer4", "layer3"]
    assert groups[10] == groups[11] == ["head", "layer4", "layer3", "layer2", "layer1", "stem"]
    # a group keeps its parameters and scale once it has joined (its optimizer state carries over)
    later = {g.name: g for g in plan_for_epoch("resnet", RESNET, config, 11).groups}
    for g in plan_for_epoch("resnet", RESNET, config, 4).groups:
        assert later[g.name] == g


def test_freeze_bn_freezes_every_batchnorm_and_its_affine_parameters():
    plan = plan_for_epoch("resnet", RESNET, preset("full_frozen_bn"), 0)
    assert len(plan.frozen_norm) == 5
    assert not any(".bn1." in name or name.startswith("bn1.") for name in plan.trainable)
    assert "layer1.0.conv1.weight" in plan.trainable


def test_too_many_top_stages_is_a_clear_error():
    with pytest.raises(ConfigError, match="top_stages=9 but the backbone has 5 stages"):
        plan_for_epoch("resnet", RESNET, preset("top1", top_stages=9), 0)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="linear_probe"):
        preset("freeze_everything")


def test_describe_counts_trainable_parameters():
    sizes = {k: 10 for k in RESNET}
    everything = describe(None, sizes)
    probe = describe(plan_for_epoch("resnet", RESNET, preset("linear_probe"), 0), sizes)
    n_params = len([k for k in RESNET if "running" not in k and "num_batches" not in k])
    assert everything["trainable_params"] == everything["params"] == 10 * n_params
    assert probe["trainable_params"] == 40 and probe["groups"] == ["head"]


def test_experiment_grid_crosses_finetuning_presets_with_variants():
    spec = parse_config(
        {
            "name": "t",
            "grid": {
                "datasets": ["bloodmnist"],
                "models": ["resnet18"],
                "frameworks": ["torch", "jax"],
                "finetune": ["linear_probe", "gradual"],
            },
            "base": {"finetune": {"pretrained": "imagenet"}},
            "variants": [{"name": "a"}, {"name": "b", "set": {"recipe.sampler": "balanced"}}],
        },
        ExperimentSpec,
    )
    trials = expand(spec)
    assert len(trials) == 2 * 2 * 2
    gradual = [t for t in trials if t.labels.get("finetune") == "gradual"]
    assert {t.config.finetune.unfreeze_every for t in gradual} == {1}
    assert all(t.config.finetune.pretrained == "imagenet" for t in trials)  # the base's field survives
    assert {t.config.tags["finetune"] for t in trials} == {"linear_probe", "gradual"}
    assert len({t.key for t in trials}) == len(trials) == len({t.config_hash for t in trials})
    with pytest.raises(ConfigError, match="unknown fine-tuning"):
        parse_config(
            {"name": "t", "grid": {"datasets": ["bloodmnist"], "finetune": ["nope"]}}, ExperimentSpec
        )


# what each shipped preset trains at epochs 0 and 1 on a ResNet: {group: lr scale}, and frozen BatchNorm count
PRESET_PLANS = {
    "linear_probe": ({"head": 1.0}, {"head": 1.0}, 5),
    "top1": ({"head": 1.0, "layer4": 1.0}, {"head": 1.0, "layer4": 1.0}, 4),
    "top2": ({"head": 1.0, "layer4": 1.0, "layer3": 1.0},) * 2 + (3,),
    "full": (None, None, 0),
    "full_discriminative": ({"head": 1.0, **{f"layer{i}": 0.1 for i in range(1, 5)}, "stem": 0.1},) * 2
    + (0,),
    "full_frozen_bn": ({"head": 1.0, **{f"layer{i}": 1.0 for i in range(1, 5)}, "stem": 1.0},) * 2 + (5,),
    "gradual": ({"head": 1.0}, {"head": 1.0, "layer4": 0.1}, 5),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_what_its_name_says(name):
    assert set(PRESET_PLANS) == set(PRESETS)  # a new preset needs its row here
    epoch0, epoch1, frozen_norm = PRESET_PLANS[name]
    config = preset(name)
    assert isinstance(config, FinetuneConfig)
    for epoch, expected in ((0, epoch0), (1, epoch1)):
        plan = plan_for_epoch("resnet", RESNET, config, epoch)
        got = None if plan is None else {g.name: g.lr_scale for g in plan.groups}
        assert got == expected, (name, epoch)
    plan = plan_for_epoch("resnet", RESNET, config, 0)
    assert (0 if plan is None else len(plan.frozen_norm)) == frozen_norm, name
    if plan is not None:  # a frozen BatchNorm's weight and bias are in no group
        trained = {p for g in plan.groups for p in g.params}
        assert not {f"{m}.{k}" for m in plan.frozen_norm for k in ("weight", "bias")} & trained, name


@pytest.mark.parametrize(("model", "expected"), [("resnet50", "imagenet"), ("efficientnetv2_l", "official")])
def test_pretrained_normalisation_follows_the_weights_transforms(model, expected):
    from medbench.training import normalization_for

    config = parse_config(
        {
            "model": model,
            "data": {"dataset": "dermamnist", "normalize": "pretrained"},
            "finetune": {"pretrained": "imagenet"},
        }
    )
    assert normalization_for(config, data=None) == expected
