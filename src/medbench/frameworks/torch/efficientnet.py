"""EfficientNetV2 (S, M, L) in PyTorch, module for module as ``torchvision.models.efficientnet_v2_*``.

The module tree is torchvision's, so ``state_dict`` keys and shapes are identical (``features.0.0.weight``,
``features.4.0.block.2.fc1.bias``, ``classifier.1.weight``) and torchvision checkpoints load unchanged;
``tools/check_torchvision_layout.py`` checks both against torchvision itself. torchvision is not imported:
the architecture comes from :mod:`medbench.frameworks.efficientnet_spec`, which the JAX and Keras versions
read too. Only the stem differs from torchvision: it takes ``in_channels`` instead of a fixed 3. Built
after the same ``torch.manual_seed``, the initial weights equal torchvision's bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from medbench.frameworks import efficientnet_spec as spec
from medbench.frameworks.families import HeadConfig
from medbench.frameworks.noise import current_mask
from medbench.frameworks.torch.layers import Dropout


class Conv2dNormActivation(nn.Sequential):
    """``0`` conv (no bias, padding ``k // 2``), ``1`` BatchNorm(eps 1e-3), ``2`` SiLU if ``activation``."""

    def __init__(self, cfg: spec.ConvSpec):
        layers: list[nn.Module] = [
            nn.Conv2d(
                cfg.in_channels,
                cfg.out_channels,
                cfg.kernel,
                cfg.stride,
                cfg.padding,
                groups=cfg.groups,
                bias=False,
            ),
            nn.BatchNorm2d(cfg.out_channels, eps=spec.BN_EPS, momentum=spec.BN_MOMENTUM_TORCH),
        ]
        if cfg.activation:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation with SiLU: the channel gate of MBConv."""

    def __init__(self, cfg: spec.SqueezeSpec):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(cfg.channels, cfg.squeeze_channels, 1)
        self.fc2 = nn.Conv2d(cfg.squeeze_channels, cfg.channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth(p, "row"): drops the whole residual branch of some samples."""

    noise_site: str | None = None  # its path, for a mask handed over by the step (shared noise)

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = current_mask(self.noise_site)
        if mask is not None:  # (batch, 1, 1, 1): 0 or 1 / (1 - p), drawn by medbench.data.noise
            return x * mask.to(x.dtype)
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        noise = noise.bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=row"


class MBConvBlock(nn.Module):
    """torchvision's ``MBConv`` and ``FusedMBConv``, which differ only in the layers of ``block``."""

    def __init__(self, cfg: spec.BlockSpec):
        super().__init__()
        self.use_res_connect = cfg.residual
        layers = [
            SqueezeExcitation(layer) if isinstance(layer, spec.SqueezeSpec) else Conv2dNormActivation(layer)
            for layer in cfg.layers
        ]
        self.block = nn.Sequential(*layers)
        # only a residual branch is ever dropped: elsewhere p = 0, so the module lists no noise site it never uses
        self.stochastic_depth = StochasticDepth(cfg.stochastic_depth_prob if cfg.residual else 0.0)
        self.out_channels = cfg.out_channels

    def forward(self, x: Tensor) -> Tensor:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result += x
        return result


class EfficientNetV2(nn.Module):
    """``features`` (stem, stages, head conv) → global average pool → ``classifier``.

    ``classifier`` is torchvision's Dropout, Linear, or the ``mlp`` head: Dropout, Linear, ReLU, Linear.
    """

    def __init__(self, cfg: spec.EfficientNetV2Config, *, num_classes: int, in_channels: int = 3):
        super().__init__()
        stem_channels, last_channels = spec.head_channels(cfg.variant)
        plan = spec.block_plan(cfg.variant, cfg.stochastic_depth_prob)
        layers: list[nn.Module] = [
            Conv2dNormActivation(spec.ConvSpec(in_channels, stem_channels, 3, 2, 1, True))
        ]
        layers += [nn.Sequential(*(MBConvBlock(block) for block in stage)) for stage in plan]
        layers.append(
            Conv2dNormActivation(spec.ConvSpec(plan[-1][-1].out_channels, last_channels, 1, 1, 1, True))
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _classifier(cfg.head_config, last_channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's initialisation, drawn from torch's global generator (seed it first)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = spec.linear_init_range(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _classifier(cfg: HeadConfig, in_features: int, num_classes: int) -> nn.Sequential:
    """torchvision's ``classifier`` (``0`` Dropout, ``1`` Linear), or the ``mlp`` head.

    ``mlp``: ``0`` Dropout, ``1`` Linear to ``cfg.hidden``, ``2`` ReLU, ``3`` Linear; both Linear layers are
    initialised as torchvision's classifier by :meth:`EfficientNetV2.reset_parameters`.
    """
    if cfg.kind == "linear":
        return nn.Sequential(Dropout(p=cfg.dropout), nn.Linear(in_features, num_classes))
    return nn.Sequential(
        Dropout(p=cfg.dropout),
        nn.Linear(in_features, cfg.hidden),
        nn.ReLU(inplace=True),
        nn.Linear(cfg.hidden, num_classes),
    )


def build_efficientnetv2(
    *, num_classes: int, in_channels: int, image_size: int | None = None, **options: Any
) -> EfficientNetV2:
    """An EfficientNetV2 taking NCHW input, initialised from torch's global generator (seed it first).

    Args:
        num_classes: width of the classifier.
        in_channels: channels of the input images (the stem conv takes them).
        image_size: unused (the pooling is global); accepted so every family has one builder signature.
        **options: ``variant`` (``"s"``, ``"m"``, ``"l"``), ``dropout``, ``stochastic_depth_prob``, ``head``
            (``"linear"`` or ``"mlp"``), ``head_hidden``; see
            :class:`~medbench.frameworks.efficientnet_spec.EfficientNetV2Config`.

    Raises:
        ConfigError: an unknown option or variant, or a probability outside [0, 1).
    """
    del image_size
    cfg = spec.EfficientNetV2Config.from_options(options)
    return EfficientNetV2(cfg, num_classes=num_classes, in_channels=in_channels)
