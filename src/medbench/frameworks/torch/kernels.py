"""PyTorch's fastest float32 kernels: the best-kernel yardstick of :func:`medbench.bench.artifacts.kernel_peak`.

Measured on torch's own defaults, not through ``runtime.configure``: the yardstick is plain float32, so it
must not switch TF32 on for matrix products as a configured CUDA run does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medbench.frameworks.base import RateFn


def kernel_rates(
    *,
    a: np.ndarray,
    b: np.ndarray,
    conv_shape: Mapping[str, int],
    threads: int | None,
    device: str,
    rate: RateFn,
) -> dict[str, dict[str, Any]]:
    """torch's matrix product and 3x3 convolutions (NCHW and channels-last) on the CPU, and on CUDA when
    there is one and ``device`` allows it."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    n = a.shape[0]
    batch, channels, spatial = conv_shape["batch"], conv_shape["channels"], conv_shape["spatial"]
    conv_flops = 2 * batch * spatial**2 * channels * channels * 9
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, spatial, spatial, generator=gen)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    devices = ["cpu"] + (["cuda"] if device != "cpu" and torch.cuda.is_available() else [])
    rates: dict[str, Any] = {}
    with torch.inference_mode():
        for dev in devices:
            prefix, sync = ("torch", None) if dev == "cpu" else ("torch_cuda", torch.cuda.synchronize)
            ta, tb = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
            rates[f"{prefix}_matmul"] = rate(lambda ta=ta, tb=tb: torch.mm(ta, tb), 2 * n**3, sync)
            for layout, memory_format in (
                ("", torch.contiguous_format),
                ("_channels_last", torch.channels_last),
            ):
                xd = x.to(dev).contiguous(memory_format=memory_format)
                cd = conv.to(dev).to(memory_format=memory_format)
                rates[f"{prefix}_conv3x3{layout}"] = rate(lambda xd=xd, cd=cd: cd(xd), conv_flops, sync)
    return rates
