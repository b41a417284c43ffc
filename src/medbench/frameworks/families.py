"""Framework-neutral configuration of the model families that every back-end builds.

:mod:`medbench.models` says *which* options a registered name carries; this module turns those options
(plus user overrides and the image size) into one validated, frozen config per family, so that the three
back-ends cannot disagree about a default (``small_input`` for example is decided here, once).
Nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medbench.errors import ConfigError

# Below this input size the ResNet stem keeps full resolution (3x3 conv, stride 1, no max-pool), as the
# MedMNIST baselines do at 28 px; a 7x7/2 stem plus max-pool would leave 7x7 maps before layer1.
SMALL_INPUT_BELOW = 64


def _check_keys(family: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for the {family} family.",
            f"Known options: {', '.join(allowed)}.",
        )


def _positive_ints(family: str, key: str, value: Any) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in value)
    except TypeError as err:
        raise ConfigError(f"{family} option {key}={value!r} is not a sequence of integers.") from err
    if not values or min(values) < 1:
        raise ConfigError(f"{family} option {key}={value!r} must be non-empty positive integers.")
    return values


HEADS = ("linear", "mlp")


@dataclass(frozen=True)
class HeadConfig:
    """The classifier on top of the pooled features, the same in every family that offers a choice.

    * ``linear``: the family's own head (ResNet ``fc``; EfficientNet ``classifier`` = dropout, linear).
    * ``mlp``: pooling, dropout, dense, ReLU, dense, as ``<head>.0`` Dropout(``dropout``),
      ``<head>.1`` Linear(features, ``hidden``), ``<head>.2`` ReLU, ``<head>.3`` Linear(``hidden``, classes);
      its Linear layers are initialised as the family's own head.
    """

    kind: Literal["linear", "mlp"] = "linear"
    hidden: int = 512
    dropout: float = 0.0

    @classmethod
    def from_options(cls, family: str, kind: Any, hidden: Any, dropout: Any) -> HeadConfig:
        if kind not in HEADS:
            raise ConfigError(
                f"{family} option head={kind!r} is unknown.", f"Choose one of {', '.join(HEADS)}."
            )
        if int(hidden) < 1:
            raise ConfigError(f"{family} option head_hidden={hidden!r} must be a positive integer.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"{family} option head_dropout={dropout!r} must be in [0, 1).")
        return cls(kind, int(hidden), float(dropout))


@dataclass(frozen=True)
class SimpleCNNConfig:
    """Conv blocks (conv3x3-BN-ReLU x ``convs_per_block``, then 2x2 max-pool), global average pool, MLP head.

    Torch names: ``blocks.{i}.{j}.conv.weight``, ``blocks.{i}.{j}.bn.{weight,bias,running_mean,running_var}``
    for block ``i`` and conv ``j``; ``fc1.{weight,bias}`` (hidden) and ``fc2.{weight,bias}`` (classes).
    The head follows a *global average pool* rather than a flatten: the parameter count then does not
    depend on the image size (a flatten at 224 px would put 12.8 M weights into ``fc1``), and the same
    model runs from 28 to 224 px; it also spares the NCHW/NHWC reordering a flattened head would need.
    """

    widths: tuple[int, ...] = (32, 64, 128)
    convs_per_block: int = 1
    hidden: int = 128
    dropout: float = 0.5

    @classmethod
    def from_options(cls, options: Mapping[str, Any], image_size: int) -> SimpleCNNConfig:
        _check_keys("simple_cnn", options, tuple(f.name for f in dataclasses.fields(cls)))
        cfg = cls(**options)
        widths = _positive_ints("simple_cnn", "widths", cfg.widths)
        if not 0.0 <= float(cfg.dropout) < 1.0:
            raise ConfigError(f"simple_cnn option dropout={cfg.dropout!r} must be in [0, 1).")
        if int(cfg.convs_per_block) < 1 or int(cfg.hidden) < 1:
            raise ConfigError("simple_cnn options convs_per_block and hidden must be positive integers.")
        if image_size < 2 ** len(widths):
            raise ConfigError(
                f"simple_cnn with {len(widths)} blocks halves the image {len(widths)} times; "
                f"{image_size} px is too small.",
                "Use fewer widths or a larger image size.",
            )
        return cls(widths, int(cfg.convs_per_block), int(cfg.hidden), float(cfg.dropout))


@dataclass(frozen=True)
class ResNetConfig:
    """A torchvision-layout ResNet (v1.5: the stride sits in the 3x3 conv of a bottleneck).

    ``small_input=None`` resolves to ``image_size < 64``: a 3x3/1 stem without max-pool for small images
    (28 px, as the MedMNIST baselines), torchvision's 7x7/2 stem plus 3x3/2 max-pool otherwise.
    ``head="mlp"`` (see :class:`HeadConfig`) replaces ``fc`` by ``fc.0``..``fc.3``; ``head_dropout`` is
    its dropout. The resolved head is :attr:`head_config`.
    """

    block: Literal["basic", "bottleneck"] = "basic"
    layers: tuple[int, ...] = (2, 2, 2, 2)
    small_input: bool | None = None
    zero_init_residual: bool = False
    head: Literal["linear", "mlp"] = "linear"
    head_hidden: int = 512
    head_dropout: float = 0.5

    @property
    def head_config(self) -> HeadConfig:
        return HeadConfig(self.head, self.head_hidden, self.head_dropout)

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @classmethod
    def from_options(cls, options: Mapping[str, Any], image_size: int) -> ResNetConfig:
        _check_keys("resnet", options, tuple(f.name for f in dataclasses.fields(cls)))
        cfg = cls(**options)
        if cfg.block not in ("basic", "bottleneck"):
            raise ConfigError(f"resnet option block={cfg.block!r} must be 'basic' or 'bottleneck'.")
        layers = _positive_ints("resnet", "layers", cfg.layers)
        if len(layers) != 4:
            raise ConfigError(f"resnet option layers={cfg.layers!r} must have four stages.")
        small = cfg.small_input if cfg.small_input is not None else image_size < SMALL_INPUT_BELOW
        head = HeadConfig.from_options("resnet", cfg.head, cfg.head_hidden, cfg.head_dropout)
        return cls(
            cfg.block, layers, bool(small), bool(cfg.zero_init_residual), head.kind, head.hidden, head.dropout
        )

    def stages(self) -> list[tuple[int, int, int]]:
        """(planes, blocks, stride) of layer1..layer4."""
        return [(64 * 2**i, n, 1 if i == 0 else 2) for i, n in enumerate(self.layers)]


def check_build_args(name: str, *, num_classes: int, in_channels: int, image_size: int) -> None:
    """The arguments every builder shares, validated once with a message that names the bad value."""
    for key, value in (
        ("num_classes", num_classes),
        ("in_channels", in_channels),
        ("image_size", image_size),
    ):
        if int(value) < 1:
            raise ConfigError(f"{key}={value!r} for model {name!r} must be a positive integer.")


def resolve_model(name: str, overrides: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The family of a registered model and its options with ``overrides`` applied."""
    from medbench.models import get_model_spec

    spec = get_model_spec(name)
    return spec.family, spec.resolve(**overrides)
