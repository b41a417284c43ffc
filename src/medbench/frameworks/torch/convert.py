"""PyTorch-named numpy state dicts <-> a PyTorch module: the reference side of the naming convention.

The convention every back-end follows: a parameter is addressed by the exact key PyTorch's ``state_dict``
gives it in the equivalent torchvision model (``conv1.weight``, ``layer1.0.bn1.running_mean``, ``fc.bias``),
and the exchanged arrays are in PyTorch layout:

===================  =================  ======================================================
kind                 PyTorch key        layout
===================  =================  ======================================================
convolution          ``<path>.weight``  (out, in / groups, kh, kw); depthwise: (C, 1, kh, kw)
linear               ``<path>.weight``  (out, in)
conv / linear bias   ``<path>.bias``    (out,)
BatchNorm            ``<path>.weight``  ``.bias``, ``.running_mean``, ``.running_var``: (C,)
===================  =================  ======================================================

``num_batches_tracked`` is PyTorch's alone: exported here, never required on import. On this side the
conversion is the identity (plus a copy to contiguous NCHW: channels_last tensors are strided).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from medbench.frameworks.checkpoints import check_state_dict, is_ignored


def state_dict(model: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters and buffers as contiguous PyTorch-layout numpy arrays."""
    # copy: .numpy() of a CPU tensor shares its memory, and training would change the exported array
    return {k: v.detach().cpu().numpy().copy(order="C") for k, v in model.state_dict().items()}


def load_state_dict(model: nn.Module, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
    """Copies PyTorch-named arrays into ``model``; :class:`WeightsError` on any mismatch (before any copy)."""
    own = model.state_dict()
    check_state_dict({k: tuple(v.shape) for k, v in own.items()}, state, strict=strict)
    tensors = {}
    for key, value in state.items():
        if key not in own or (is_ignored(key) and own[key].shape != np.shape(value)):
            continue
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value)).to(own[key].dtype)
    model.load_state_dict(tensors, strict=False)  # copy_ keeps each tensor's device and memory format
