"""Fine-tuning plans: which parameters train, at which learning rate, epoch by epoch. Framework-neutral.

Every back-end names its parameters as PyTorch's ``state_dict`` does, so the plan is computed once, here,
from those names, and each trainer applies it (:class:`medbench.frameworks.base.TrainPlan`). The backbone
is split into *stages*, bottom to top:

=================  ===============================================  ==================
family             stages                                           head
=================  ===============================================  ==================
resnet             stem (``conv1``, ``bn1``), ``layer1``..``layer4``  ``fc``
efficientnetv2     ``features.0`` (stem) .. ``features.N`` (1x1 head  ``classifier``
                   conv)
simple_cnn         ``blocks.0`` .. ``blocks.N``                     ``fc1``, ``fc2``
=================  ===============================================  ==================

A :class:`~medbench.config.FinetuneConfig` picks the trainable stages (none: a linear probe; the top N;
all), a learning-rate scale for the backbone (discriminative learning rates), gradual unfreezing (one more
stage from the top every N epochs, each joining with fresh optimizer state, as ``add_param_group``), and
frozen BatchNorm. BatchNorm layers in frozen stages always run in inference mode (Keras' rule for frozen
layers, and what keeps a linear probe a linear probe); ``freeze_bn`` freezes the others too.

Named configurations (:data:`PRESETS`) are the ones the DermaMNIST transfer study compares; they compose
with any model, head variant, input size and recipe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from medbench.config import FinetuneConfig
from medbench.errors import ConfigError
from medbench.frameworks.base import ParamGroup, TrainPlan

BUFFER_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")

HEAD_PREFIXES: dict[str, tuple[str, ...]] = {
    "resnet": ("fc",),
    "efficientnetv2": ("classifier",),
    "simple_cnn": ("fc1", "fc2"),
}

PRESETS: dict[str, dict[str, Any]] = {
    "linear_probe": {"trainable": "head"},
    "top1": {"trainable": "top", "top_stages": 1},
    "top2": {"trainable": "top", "top_stages": 2},
    "full": {"trainable": "all"},
    "full_discriminative": {"trainable": "all", "backbone_lr_scale": 0.1},
    "full_frozen_bn": {"trainable": "all", "freeze_bn": True},
    "gradual": {"trainable": "head", "unfreeze_every": 1, "backbone_lr_scale": 0.1},
}


def preset(name: str, **overrides: Any) -> FinetuneConfig:
    """A named configuration (``linear_probe``, ``top2``, ...) as a :class:`FinetuneConfig`."""
    if name not in PRESETS:
        raise ConfigError(
            f"Unknown fine-tuning configuration {name!r}.", f"Choose one of {', '.join(PRESETS)}."
        )
    return FinetuneConfig(**{**PRESETS[name], **overrides})


def _stage(family: str, key: str) -> tuple[int, str] | None:
    """(position, name) of the backbone stage holding ``key``; ``None`` for the head."""
    first = key.split(".", 1)[0]
    if first in HEAD_PREFIXES[family]:
        return None
    if family == "resnet":
        if first in ("conv1", "bn1"):
            return 0, "stem"
        match = re.fullmatch(r"layer(\d+)", first)
    else:
        match = re.match(r"(?:features|blocks)\.(\d+)\.", key)
    if match is None:
        raise ConfigError(f"The {family} parameter {key!r} belongs to no known stage or head.")
    index = int(match.group(1))
    name = f"layer{index}" if family == "resnet" else match.group(0)[:-1]
    return index + (0 if family == "resnet" else 1), name


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0]


def stages(family: str, keys: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The backbone's stages bottom to top, each with its parameter names (running statistics excluded)."""
    if family not in HEAD_PREFIXES:
        raise ConfigError(f"Fine-tuning does not know the {family} family.", "Use resnet or efficientnetv2.")
    found: dict[tuple[int, str], list[str]] = {}
    for key in keys:
        where = _stage(family, key)
        if where is not None and not key.endswith(BUFFER_SUFFIXES):
            found.setdefault(where, []).append(key)
    return [(name, params) for (_, name), params in sorted(found.items())]


def head_params(family: str, keys: Iterable[str]) -> list[str]:
    return [
        k for k in keys if k.split(".", 1)[0] in HEAD_PREFIXES[family] and not k.endswith(BUFFER_SUFFIXES)
    ]


def norm_modules(keys: Iterable[str]) -> list[str]:
    """Module paths of every BatchNorm layer (those with running statistics)."""
    return [_module(k) for k in keys if k.endswith(".running_mean")]


def n_trainable_stages(config: FinetuneConfig, n_stages: int, epoch: int) -> int:
    initial = {"all": n_stages, "head": 0, "top": config.top_stages}[config.trainable]
    if config.trainable == "top" and config.top_stages > n_stages:
        raise ConfigError(
            f"finetune.top_stages={config.top_stages} but the backbone has {n_stages} stages.",
            f"Use at most {n_stages}, or trainable = 'all'.",
        )
    extra = epoch // config.unfreeze_every if config.unfreeze_every else 0
    return min(n_stages, initial + extra)


def plan_for_epoch(family: str, keys: Iterable[str], config: FinetuneConfig, epoch: int) -> TrainPlan | None:
    """The plan in force during ``epoch`` (0-based); ``None`` when everything trains as usual."""
    if config.trainable == "all" and config.backbone_lr_scale == 1.0 and not config.freeze_bn:
        return None
    keys = list(keys)
    backbone = stages(family, keys)
    n = n_trainable_stages(config, len(backbone), epoch)
    trainable, frozen = backbone[len(backbone) - n :], backbone[: len(backbone) - n]
    frozen_norm = {_module(p) for _, params in frozen for p in params} & set(norm_modules(keys))
    if config.freeze_bn:
        frozen_norm = set(norm_modules(keys))
    groups = [ParamGroup("head", tuple(head_params(family, keys)), 1.0)]
    for name, params in reversed(trainable):  # top stage first: the order stages join in
        params = [p for p in params if _module(p) not in frozen_norm]
        if params:
            groups.append(ParamGroup(name, tuple(params), config.backbone_lr_scale))
    norm_order = norm_modules(keys)
    return TrainPlan(tuple(groups), tuple(m for m in norm_order if m in frozen_norm))


def describe(plan: TrainPlan | None, sizes: Mapping[str, int]) -> dict[str, Any]:
    """What a plan trains, for the record: its groups and how many parameters train (``sizes``: name -> numel)."""
    params = {k: n for k, n in sizes.items() if not k.endswith(BUFFER_SUFFIXES)}
    total = sum(params.values())
    if plan is None:
        return {"groups": ["all"], "trainable_params": total, "params": total, "frozen_norm": 0}
    return {
        "groups": [g.name for g in plan.groups],
        "trainable_params": sum(params[p] for g in plan.groups for p in g.params),
        "params": total,
        "frozen_norm": len(plan.frozen_norm),
    }
