"""ONNX Runtime engines: one session over a model exported from PyTorch or from Keras/TensorFlow.

Why here rather than in ``frameworks/torch/infer.py`` and ``frameworks/keras/infer.py``: running an ONNX
file needs ONNX Runtime and nothing else, whichever framework exported it. Exporting *is* framework code,
so each back-end's ``infer.export_onnx`` writes the file, once per (model, size), in its own process
(:mod:`medbench.bench.artifacts`). The measured cell then imports only ONNX Runtime, as a deployment would:
its cold start and peak memory are ONNX Runtime's, not those of the framework the model came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medbench.environment import cpu_model
from medbench.errors import ConfigError
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine

_GPU_PROVIDER = "CUDAExecutionProvider"
_CPU_PROVIDER = "CPUExecutionProvider"


def providers_for(device: str, available: list[str]) -> list[str]:
    """The execution providers for ``device`` ("auto" takes CUDA when ONNX Runtime has it)."""
    has_gpu = _GPU_PROVIDER in available
    if device == "gpu" and not has_gpu:
        raise ConfigError(
            "device='gpu' was asked for, but this ONNX Runtime has no CUDAExecutionProvider.",
            "Install onnxruntime-gpu, or use --device cpu.",
        )
    return [_GPU_PROVIDER, _CPU_PROVIDER] if device in ("auto", "gpu") and has_gpu else [_CPU_PROVIDER]


def prepare_session(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """An ``InferenceSession`` with every graph optimisation, threads fixed, sequential execution."""
    if request.artifact is None:
        raise ConfigError("An ONNX engine needs an exported model file, and none was given.")
    with phases.phase("import"):
        import onnxruntime as ort
    with phases.phase("load_weights"):  # the weights are inside the ONNX file
        model_bytes = Path(request.artifact).read_bytes()
    with phases.phase("compile"):  # graph optimisation and kernel selection happen at session creation
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if request.threads is not None:
            options.intra_op_num_threads = request.threads
        options.inter_op_num_threads = 1  # sequential execution uses no inter-op pool
        providers = providers_for(request.device, ort.get_available_providers())
        session = ort.InferenceSession(model_bytes, options, providers=providers)
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def predict(images: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: images})[0]

    info = {
        "versions": {"onnxruntime": ort.__version__},
        "device": "CUDA GPU" if session.get_providers()[0] == _GPU_PROVIDER else (cpu_model() or "cpu"),
        "runtime": {
            "providers": session.get_providers(),
            "intra_op_num_threads": options.intra_op_num_threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "model_bytes": len(model_bytes),
        },
    }
    return PreparedEngine(predict, info=info)
