"""EfficientNetV2 S/M/L as plain data: torchvision's stage tables, expanded into one record per block.

The three back-ends (``frameworks/{torch,jax,keras}/efficientnet.py``) build their layers from
:func:`block_plan`, so the architecture is written down once and cannot drift between frameworks.
Everything follows ``torchvision/models/efficientnet.py`` (``_efficientnet_conf`` and ``EfficientNet``):
the stage tables (Table 4 of the EfficientNetV2 paper), the channel rounding, the squeeze width, the
linearly increasing stochastic-depth probability, the head widths and the per-variant dropout.
Nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from medbench.errors import ConfigError

BlockKind = Literal["fused", "mbconv"]

BN_EPS = 1e-3  # torchvision builds EfficientNetV2 with partial(nn.BatchNorm2d, eps=1e-03)
BN_MOMENTUM_TORCH = 0.1  # torch's default; flax and keras keep 1 - 0.1 of the old statistic
BN_MOMENTUM_EMA = 1.0 - BN_MOMENTUM_TORCH


@dataclass(frozen=True)
class StageSpec:
    """One row of torchvision's ``inverted_residual_setting``."""

    kind: BlockKind
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    num_layers: int


@dataclass(frozen=True)
class VariantSpec:
    stages: tuple[StageSpec, ...]
    dropout: float
    last_channel: int = 1280


def _f(*row: int) -> StageSpec:
    return StageSpec("fused", *row)


def _m(*row: int) -> StageSpec:
    return StageSpec("mbconv", *row)


VARIANTS: dict[str, VariantSpec] = {
    "s": VariantSpec(
        (
            _f(1, 3, 1, 24, 24, 2),
            _f(4, 3, 2, 24, 48, 4),
            _f(4, 3, 2, 48, 64, 4),
            _m(4, 3, 2, 64, 128, 6),
            _m(6, 3, 1, 128, 160, 9),
            _m(6, 3, 2, 160, 256, 15),
        ),
        dropout=0.2,
    ),
    "m": VariantSpec(
        (
            _f(1, 3, 1, 24, 24, 3),
            _f(4, 3, 2, 24, 48, 5),
            _f(4, 3, 2, 48, 80, 5),
            _m(4, 3, 2, 80, 160, 7),
            _m(6, 3, 1, 160, 176, 14),
            _m(6, 3, 2, 176, 304, 18),
            _m(6, 3, 1, 304, 512, 5),
        ),
        dropout=0.3,
    ),
    "l": VariantSpec(
        (
            _f(1, 3, 1, 32, 32, 4),
            _f(4, 3, 2, 32, 64, 7),
            _f(4, 3, 2, 64, 96, 7),
            _m(4, 3, 2, 96, 192, 10),
            _m(6, 3, 1, 192, 224, 19),
            _m(6, 3, 2, 224, 384, 25),
            _m(6, 3, 1, 384, 640, 7),
        ),
        dropout=0.4,
    ),
}


@dataclass(frozen=True)
class BlockSpec:
    """One FusedMBConv or MBConv block, with every width resolved.

    ``layers`` lists the block's ``Conv2dNormActivation`` (or squeeze-excitation) sub-modules in the order
    of torchvision's ``block`` Sequential, so index ``i`` here is ``features.S.B.block.i`` there.
    """

    kind: BlockKind
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    expanded_channels: int
    squeeze_channels: int
    residual: bool
    stochastic_depth_prob: float

    @property
    def has_expand(self) -> bool:
        return self.expanded_channels != self.in_channels

    @property
    def layers(self) -> tuple[ConvSpec | SqueezeSpec, ...]:
        c_in, c_exp, c_out, k, s = (
            self.in_channels,
            self.expanded_channels,
            self.out_channels,
            self.kernel,
            self.stride,
        )
        if self.kind == "fused":
            if self.has_expand:
                return (ConvSpec(c_in, c_exp, k, s, 1, True), ConvSpec(c_exp, c_out, 1, 1, 1, False))
            return (ConvSpec(c_in, c_out, k, s, 1, True),)
        expand = (ConvSpec(c_in, c_exp, 1, 1, 1, True),) if self.has_expand else ()
        return (
            *expand,
            ConvSpec(c_exp, c_exp, k, s, c_exp, True),  # depthwise
            SqueezeSpec(c_exp, self.squeeze_channels),
            ConvSpec(c_exp, c_out, 1, 1, 1, False),  # project, linear bottleneck
        )


@dataclass(frozen=True)
class ConvSpec:
    """A ``Conv2dNormActivation``: conv (no bias, padding ``kernel // 2``), BatchNorm, optional SiLU."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    activation: bool

    @property
    def padding(self) -> int:
        return (self.kernel - 1) // 2


@dataclass(frozen=True)
class SqueezeSpec:
    """torchvision's ``SqueezeExcitation``: avgpool, 1x1 conv ``fc1``, SiLU, 1x1 conv ``fc2``, sigmoid."""

    channels: int
    squeeze_channels: int


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: a multiple of ``divisor``, never below 90 % of ``value``."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def get_variant(variant: str) -> VariantSpec:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ConfigError(
            f"Unknown EfficientNetV2 variant {variant!r}.", f"Choose one of {', '.join(map(repr, VARIANTS))}."
        ) from None


@dataclass(frozen=True)
class EfficientNetV2Config:
    """The options of the ``efficientnetv2`` family, validated once for all three back-ends.

    ``dropout=None`` resolves to torchvision's per-variant classifier dropout (0.2 / 0.3 / 0.4);
    ``stochastic_depth_prob`` is the drop probability the *last* block would reach (torchvision's 0.2).
    ``head="mlp"`` (see :class:`medbench.frameworks.families.HeadConfig`) makes ``classifier`` dropout
    (``dropout``), Linear(features, ``head_hidden``), ReLU, Linear(``head_hidden``, classes). The resolved head
    is :attr:`head_config`.
    """

    variant: str = "s"
    dropout: float | None = None
    stochastic_depth_prob: float = 0.2
    head: str = "linear"
    head_hidden: int = 512

    @property
    def head_config(self):
        from medbench.frameworks.families import HeadConfig

        return HeadConfig(self.head, self.head_hidden, float(self.dropout or 0.0))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> EfficientNetV2Config:
        known = tuple(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"Unknown option(s) {', '.join(map(repr, unknown))} for the efficientnetv2 family.",
                f"Known options: {', '.join(known)}.",
            )
        cfg = cls(**options)
        variant = str(cfg.variant).lower()
        dropout = get_variant(variant).dropout if cfg.dropout is None else float(cfg.dropout)
        for key, value in (("dropout", dropout), ("stochastic_depth_prob", float(cfg.stochastic_depth_prob))):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"efficientnetv2 option {key}={value!r} must be in [0, 1).")
        from medbench.frameworks.families import HeadConfig

        head = HeadConfig.from_options("efficientnetv2", cfg.head, cfg.head_hidden, dropout)
        return cls(variant, dropout, float(cfg.stochastic_depth_prob), head.kind, head.hidden)


def block_plan(variant: str, stochastic_depth_prob: float = 0.2) -> list[list[BlockSpec]]:
    """Every block of every stage, as torchvision's ``EfficientNet.__init__`` builds them.

    The first block of a stage takes the stage's input width and stride; the others map ``out -> out``
    with stride 1. Block ``i`` (counted over the whole network) drops its residual branch with probability
    ``stochastic_depth_prob * i / total_blocks``.
    """
    stages = get_variant(variant).stages
    total = sum(stage.num_layers for stage in stages)
    plan: list[list[BlockSpec]] = []
    block_id = 0
    for stage in stages:
        blocks = []
        for i in range(stage.num_layers):
            c_in = stage.in_channels if i == 0 else stage.out_channels
            stride = stage.stride if i == 0 else 1
            blocks.append(
                BlockSpec(
                    kind=stage.kind,
                    kernel=stage.kernel,
                    stride=stride,
                    in_channels=c_in,
                    out_channels=stage.out_channels,
                    expanded_channels=make_divisible(c_in * stage.expand_ratio),
                    squeeze_channels=max(1, c_in // 4),
                    residual=stride == 1 and c_in == stage.out_channels,
                    stochastic_depth_prob=stochastic_depth_prob * float(block_id) / total,
                )
            )
            block_id += 1
        plan.append(blocks)
    return plan


def head_channels(variant: str) -> tuple[int, int]:
    """(stem output width, last conv output width)."""
    spec = get_variant(variant)
    return spec.stages[0].in_channels, spec.last_channel


def conv_init_std(out_channels: int, kernel: int) -> float:
    """The std of torch's ``kaiming_normal_(w, mode="fan_out")`` (gain sqrt(2)) for a conv weight.

    torch's fan-out is ``weight.size(0) * kh * kw`` whatever the groups, so a depthwise conv of C channels
    gets ``sqrt(2 / (C * k * k))`` too; flax's and keras's own fan-out rules differ for depthwise kernels,
    which is why the back-ends pass this std explicitly.
    """
    return math.sqrt(2.0 / (out_channels * kernel * kernel))


def linear_init_range(out_features: int) -> float:
    """torchvision's classifier init: ``uniform(-r, r)`` with ``r = 1 / sqrt(out_features)``, zero bias."""
    return 1.0 / math.sqrt(out_features)
