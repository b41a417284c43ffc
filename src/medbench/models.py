"""The model registry: every architecture medbench can build, by name, framework-neutral.

An entry names a *family* (one generic implementation per framework, in ``frameworks/<fw>/models.py``) and
the options that make the variant, as the Flax examples do with ``partial(ResNet, stage_sizes=...)``.
Nothing here imports a framework.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from medbench.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def resolve(self, **overrides: Any) -> dict[str, Any]:
        """The family options with user overrides applied (unknown keys are left to the family to reject)."""
        return {**self.options, **overrides}


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, family: str, description: str = "", **options: Any) -> ModelSpec:
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    spec = ModelSpec(name, family, MappingProxyType(options), description)
    _MODELS[name] = spec
    return spec


register_model(
    "simple_cnn",
    "simple_cnn",
    "compact CNN of the framework-comparison studies: conv-BN-ReLU-pool blocks, dense head with dropout",
    widths=(32, 64, 128),
    convs_per_block=1,
    hidden=128,
    dropout=0.5,
)
register_model(
    "resnet18", "resnet", "ResNet-18 (torchvision v1.5 layout)", block="basic", layers=(2, 2, 2, 2)
)
register_model(
    "resnet50", "resnet", "ResNet-50 (torchvision v1.5 layout)", block="bottleneck", layers=(3, 4, 6, 3)
)
register_model("efficientnetv2_s", "efficientnetv2", "EfficientNetV2-S (torchvision layout)", variant="s")
register_model("efficientnetv2_m", "efficientnetv2", "EfficientNetV2-M (torchvision layout)", variant="m")
register_model("efficientnetv2_l", "efficientnetv2", "EfficientNetV2-L (torchvision layout)", variant="l")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, in registration order."""
    return [n for n in _MODELS if fnmatch.fnmatch(n, pattern)]


def get_model_spec(name: str) -> ModelSpec:
    if name in _MODELS:
        return _MODELS[name]
    raise ConfigError(
        f"Unknown model {name!r}.", f"{did_you_mean(name, _MODELS)}Known models: {', '.join(_MODELS)}."
    )
