"""PyTorch model families and the dispatch from a registered name to a module.

Parameter names are the contract between back-ends: ResNet matches torchvision's ``resnet18()``/``resnet50()``
key for key (checked by ``tools/check_torchvision_layout.py``); SimpleCNN's names are defined in
:class:`medbench.frameworks.families.SimpleCNNConfig`.

EfficientNetV2 lives in ``efficientnet.py`` beside this file and is imported only when asked for. The
builder this dispatch calls is::

    build_efficientnetv2(*, num_classes: int, in_channels: int, image_size: int, **options) -> torch.nn.Module

where ``options`` are the registry's (``variant="s"``...) plus user overrides; the caller has already
seeded torch (``torch.manual_seed``), and moves the module to the device and memory format afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from medbench.errors import ConfigError
from medbench.frameworks.families import HeadConfig, ResNetConfig, SimpleCNNConfig
from medbench.frameworks.torch.layers import ConvBNReLU, Dropout, batch_norm, conv2d, linear


# ---- SimpleCNN ---------------------------------------------------------------------------------------------
class SimpleCNN(nn.Module):
    def __init__(self, cfg: SimpleCNNConfig, *, num_classes: int, in_channels: int):
        super().__init__()
        blocks, channels = [], in_channels
        for width in cfg.widths:
            convs = [ConvBNReLU(channels if j == 0 else width, width) for j in range(cfg.convs_per_block)]
            blocks.append(nn.Sequential(*convs, nn.MaxPool2d(2)))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = linear(channels, cfg.hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = Dropout(cfg.dropout)
        self.fc2 = linear(cfg.hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.blocks(x)), 1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


# ---- ResNet (torchvision v1.5 layout) ----------------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv2d(inplanes, planes, 3, stride=stride)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv2d(planes, planes, 3)
        self.bn2 = batch_norm(planes)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv2d(inplanes, planes, 1)
        self.bn1 = batch_norm(planes)
        self.conv2 = conv2d(planes, planes, 3, stride=stride)  # v1.5: the stride sits in the 3x3 conv
        self.bn2 = batch_norm(planes)
        self.conv3 = conv2d(planes, planes * 4, 1)
        self.bn3 = batch_norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig, *, num_classes: int, in_channels: int):
        super().__init__()
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        if cfg.small_input:
            self.conv1 = conv2d(in_channels, 64, 3)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = conv2d(in_channels, 64, 7, stride=2)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(cfg.stages(), start=1):
            layer, inplanes = _make_layer(block, inplanes, planes, blocks, stride)
            setattr(self, f"layer{i}", layer)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = head(cfg.head_config, inplanes, num_classes)
        if cfg.zero_init_residual:  # each residual branch starts as zero, so each block as the identity
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def head(cfg: HeadConfig, in_features: int, num_classes: int) -> nn.Module:
    """ResNet's ``fc``: one Linear, or the ``mlp`` head (see :class:`HeadConfig`).

    ``mlp``: ``fc.0`` Dropout, ``fc.1`` Linear, ``fc.2`` ReLU, ``fc.3`` Linear; both Linear layers keep
    PyTorch's default initialisation, as torchvision's own ``fc``.
    """
    if cfg.kind == "linear":
        return linear(in_features, num_classes)
    return nn.Sequential(
        Dropout(cfg.dropout),
        linear(in_features, cfg.hidden),
        nn.ReLU(inplace=True),
        linear(cfg.hidden, num_classes),
    )


def _make_layer(block, inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            conv2d(inplanes, planes * block.expansion, 1, stride=stride), batch_norm(planes * block.expansion)
        )
    layers = [block(inplanes, planes, stride, downsample)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


# ---- dispatch ----------------------------------------------------------------------------------------------
def build(
    family: str, options: dict[str, Any], *, num_classes: int, in_channels: int, image_size: int
) -> nn.Module:
    """The module for ``family`` with ``options``; the caller seeds torch first."""
    if family == "simple_cnn":
        cfg = SimpleCNNConfig.from_options(options, image_size)
        return SimpleCNN(cfg, num_classes=num_classes, in_channels=in_channels)
    if family == "resnet":
        cfg = ResNetConfig.from_options(options, image_size)
        return ResNet(cfg, num_classes=num_classes, in_channels=in_channels)
    if family == "efficientnetv2":
        from medbench.frameworks.torch import efficientnet

        return efficientnet.build_efficientnetv2(
            num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options
        )
    raise ConfigError(f"The torch back-end has no model family {family!r}.")


# ---- the back-end contract (medbench.frameworks.base.ModelsModule) -----------------------------------------
def build_model(
    rt,
    family: str,
    options: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    seed: int,
) -> nn.Module:
    """Seeds torch, builds, tags the noise layers, and moves the model to the runtime's device and layout."""
    from medbench.frameworks.torch.layers import tag_noise_sites

    torch.manual_seed(seed)
    model = build(family, options, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    tag_noise_sites(model)
    memory_format = torch.channels_last if rt.settings.channels_last else torch.contiguous_format
    return model.to(device=rt.device, memory_format=memory_format)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def predict(rt, model: nn.Module, images: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.inference_mode(), rt.autocast():
        logits = model(rt.to_input(images))
    return logits.float().cpu().numpy()
