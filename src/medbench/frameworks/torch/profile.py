"""FLOPs of a PyTorch model, counted by PyTorch itself (see :mod:`medbench.frameworks.flops`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def flops_per_image(model: nn.Module, *, image_size: int, in_channels: int) -> int:
    """``FlopCounterMode`` over one eval-mode forward pass of one image: 2*MACs of convs and matmuls."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, image_size, image_size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())
