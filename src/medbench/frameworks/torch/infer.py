"""PyTorch inference engines for the benchmark (see :mod:`medbench.bench.engines`): eager, compiled, ONNX.

Each ``prepare_*`` builds the registered model through the back-end, loads the PyTorch-named weights and
returns a numpy-in, numpy-out predict function. Importing this module does not import torch: the import is
timed as the engine's first phase (it is part of a cold start).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medbench.config import RuntimeConfig
from medbench.frameworks.checkpoints import read_state_dict
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine, load_engine_model


def _build(request: EngineRequest, phases: Phases):
    """Imports and configures torch, builds the model in eval mode and loads the weights."""
    fw, model, info = load_engine_model("torch", request, phases)
    model.eval()
    return fw, model, info


def _predictor(fw, module):
    import torch

    to_input = fw.runtime.to_input

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(to_input(images)).float().cpu().numpy()

    return predict


def prepare_eager(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """``model(x)`` under ``torch.inference_mode()``, channels_last as the back-end sets it up."""
    fw, model, info = _build(request, phases)
    return PreparedEngine(_predictor(fw, model), fw.synchronize, info, fw.gpu_peak())


def prepare_compiled(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """``torch.compile(model)``: Inductor compiles lazily, on the first call of each batch size.

    ``dynamic=False`` because the benchmark calls a few fixed batch sizes: one specialised graph each is
    what a server with fixed batch sizes would run (dynamic shapes trade speed for fewer recompilations).
    """
    fw, model, info = _build(request, phases)
    import torch  # imported (and timed) by _build already

    mode = request.options.get("mode")
    with phases.phase("compile"):  # only wraps the module; the compilation itself is the first call
        compiled = torch.compile(model, dynamic=False, mode=mode)
    info["compile"] = {"backend": "inductor", "mode": mode or "default", "dynamic": False}
    return PreparedEngine(_predictor(fw, compiled), fw.synchronize, info, fw.gpu_peak())


# ---- ONNX export ------------------------------------------------------------------------------------------


def _nhwc_module(model):
    """The model behind an NHWC input, so the ONNX graph takes the same numpy batch as every engine."""
    from torch import nn

    class NHWCInput(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 3, 1, 2))

    # eval() on the wrapper too: the exporter restores the wrapper's training flag afterwards, recursively.
    return NHWCInput(model).eval()


def export_onnx(
    *,
    model: str,
    weights: str | Path,
    path: str | Path,
    image_size: int,
    in_channels: int,
    num_classes: int,
    opset: int = 17,
) -> dict[str, Any]:
    """Exports the model with ``weights`` to ONNX at ``path``: NHWC float32 input, dynamic batch axis.

    Uses the TorchScript-based exporter (``dynamo=False``): the ``torch.export``-based one needs
    ``onnxscript``, which medbench does not require; both give the same graph for these CNNs.
    """
    import torch

    from medbench.frameworks import get_framework

    fw = get_framework("torch")
    fw.configure(RuntimeConfig(device="cpu", channels_last=False))
    net = fw.build_model(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    fw.load_state_dict(net, read_state_dict(weights))
    example = torch.zeros(2, image_size, image_size, in_channels)
    torch.onnx.export(
        _nhwc_module(net.eval()),
        (example,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    return {"exporter": "torch.onnx.export (TorchScript)", "opset": opset, "torch": torch.__version__}
