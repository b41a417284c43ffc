"""PyTorch building blocks with torchvision's initialisation, shared by every family.

The scheme (the same in the Flax and Keras ``layers.py``): convolutions ``kaiming_normal_(fan_out, relu)``
with zero bias, BatchNorm weight 1 and bias 0, Linear PyTorch's default ``U(+-1/sqrt(fan_in))`` for weight
and bias. Identical *values* across frameworks come from converting weights, not from seeds.
"""

from __future__ import annotations

import torch
from torch import nn

from medbench.frameworks.noise import current_mask

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch's convention: new = (1 - m) * old + m * batch; Flax/Keras say 0.9


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    groups: int = 1,
    bias: bool = False,
) -> nn.Conv2d:
    """A convolution with symmetric padding ``kernel_size // 2`` unless told otherwise."""
    padding = kernel_size // 2 if padding is None else padding
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def batch_norm(num_features: int, *, eps: float = BN_EPS, momentum: float = BN_MOMENTUM) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)  # weight 1, bias 0 by default


def linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default U(+-1/sqrt(fan_in))


class ConvBNReLU(nn.Module):
    """conv - BatchNorm - ReLU, with the names ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1):
        super().__init__()
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride=stride)
        self.bn = batch_norm(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Dropout(nn.Dropout):
    """``nn.Dropout`` that takes its mask from the training step when one is handed over (shared noise).

    ``noise_site`` is the module's path, set by :func:`tag_noise_sites`; without a handed-over mask (native
    noise, evaluation) this is ``nn.Dropout`` itself. See :mod:`medbench.frameworks.noise`.
    """

    noise_site: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = current_mask(self.noise_site) if self.training and self.p > 0 else None
        if mask is None:
            return super().forward(x)
        return x * mask.to(x.dtype)


def noise_layers(model: nn.Module):
    """(path, module) of every layer that draws training noise: dropout and stochastic depth."""
    for path, module in model.named_modules():
        if hasattr(type(module), "noise_site"):
            yield path, module


def tag_noise_sites(model: nn.Module) -> dict[str, float]:
    """Tells each noise layer its path (the site name of its masks); returns path -> p of those with p > 0."""
    found = {}
    for path, module in noise_layers(model):
        module.noise_site = path
        if module.p > 0:
            found[path] = float(module.p)
    return found
