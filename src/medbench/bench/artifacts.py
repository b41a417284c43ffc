"""Work a benchmark session does once, each in its own worker process (answered jobs of
:mod:`medbench.orchestration.worker`, run by :func:`medbench.orchestration.process.call_worker`):

- ``reference``: builds the PyTorch model, gives its BatchNorm layers non-trivial statistics, saves the
  weights (safetensors, PyTorch names), draws the fixed input batch and records PyTorch eager fp32 logits on
  it (on the CPU: the reference must not be TF32), plus FLOPs per image; optionally exports the ONNX model
  from the same weights. Every engine loads these weights and is checked against these logits.
- ``export``: an exported model made by another framework (the Keras/TensorFlow ONNX file), in a process
  with that framework's ``KERAS_BACKEND``.
- ``kernel_peak``: the fastest float32 kernel of the installed frameworks (numpy's matrix product, and the
  kernels of each back-end of :data:`KERNEL_FRAMEWORKS` that has a ``kernels`` module: PyTorch's matrix
  product and 3x3 convolution), one of the two yardsticks of each engine's achieved FLOP/s (the other, the
  FMA peak, is measured by :mod:`medbench.bench.peak` without any framework).

Separate processes keep the parent (the CLI) free of framework imports and keep these imports out of the
measured cells. This module imports no framework itself: the framework parts go through the back-ends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_FILE = "weights.safetensors"
INPUTS_FILE = "inputs.npy"
REFERENCE_FILE = "reference.npy"


# ---- reference ---------------------------------------------------------------------------------------------


def randomize_batchnorm(state: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Non-trivial BatchNorm statistics and affine parameters, so a mis-converted BatchNorm cannot hide.

    Freshly built BatchNorm layers have mean 0, variance 1, weight 1 and bias 0: an exporter that dropped
    them, or swapped mean and variance, would still match. Vectors are recognised by name and rank: 1-d
    ``weight``/``bias`` (BatchNorm's, and harmlessly a linear bias), ``running_mean``, ``running_var``.
    """
    rng = np.random.default_rng(seed + 1)
    out = dict(state)
    for key, value in state.items():
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.floating):
            continue
        if key.endswith((".running_var", ".weight")):
            out[key] = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
        elif key.endswith((".running_mean", ".bias")):
            out[key] = rng.normal(0.0, 0.1, value.shape).astype(value.dtype)
    return out


def make_reference(
    *,
    model: str,
    image_size: int,
    in_channels: int,
    num_classes: int,
    n_inputs: int,
    out_dir: str | Path,
    seed: int = 0,
    threads: int | None = None,
    export_onnx: bool = False,
) -> dict[str, Any]:
    """Weights, inputs and reference logits of one (model, size) in ``out_dir``; see the module docstring."""
    from safetensors.numpy import save_file

    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fw = get_framework("torch")
    fw.configure(RuntimeConfig(threads=threads, device="cpu"))
    net = fw.build_model(
        model, num_classes=num_classes, in_channels=in_channels, image_size=image_size, seed=seed
    )
    state = randomize_batchnorm(fw.state_dict(net), seed)
    fw.load_state_dict(net, state)
    save_file(state, str(out_dir / WEIGHTS_FILE))
    rng = np.random.default_rng(seed)
    # Standard normal pixels: the scale of normalised images, and no two rows alike.
    inputs = rng.standard_normal((n_inputs, image_size, image_size, in_channels), dtype=np.float32)
    np.save(out_dir / INPUTS_FILE, inputs)
    logits = fw.predict(net, inputs).astype(np.float32)
    np.save(out_dir / REFERENCE_FILE, logits)
    result: dict[str, Any] = {
        "weights": str(out_dir / WEIGHTS_FILE),
        "inputs": str(out_dir / INPUTS_FILE),
        "reference": str(out_dir / REFERENCE_FILE),
        "reference_engine": "torch-eager (CPU, fp32)",
        "flops_per_image": fw.flops_per_image(net, image_size=image_size, in_channels=in_channels),
        "flops_counter": "torch.utils.flop_counter.FlopCounterMode (2 x MACs of convs and matmuls)",
        "params": fw.count_params(net),
        "logit_scale": float(np.abs(logits).max()),
        "versions": fw.versions(),
    }
    if export_onnx:
        result["artifacts"] = {
            "onnx-torch": _export_guarded("onnx-torch", model, out_dir, image_size, in_channels, num_classes)
        }
    return result


# ---- exports -----------------------------------------------------------------------------------------------


def export(
    *,
    artifact: str,
    model: str,
    weights: str | Path,
    path: str | Path,
    image_size: int,
    in_channels: int,
    num_classes: int,
) -> dict[str, Any]:
    """Runs the artifact's exporter (see :data:`medbench.bench.engines.ARTIFACTS`); returns what it says."""
    from medbench.bench.engines import ARTIFACTS, load_entry

    spec = ARTIFACTS[artifact]
    start = time.perf_counter()
    info = load_entry(spec.exporter)(
        model=model,
        weights=weights,
        path=path,
        image_size=image_size,
        in_channels=in_channels,
        num_classes=num_classes,
    )
    return {
        "path": str(path),
        "export_s": time.perf_counter() - start,
        "bytes": Path(path).stat().st_size,
        **info,
    }


def _export_guarded(
    artifact: str, model: str, out_dir: Path, image_size: int, in_channels: int, num_classes: int
) -> dict[str, Any]:
    """An export whose failure is a result ({"error": ...}) rather than the end of the reference task."""
    from medbench.bench.engines import ARTIFACTS

    try:
        return export(
            artifact=artifact,
            model=model,
            weights=out_dir / WEIGHTS_FILE,
            path=out_dir / f"{artifact}{ARTIFACTS[artifact].suffix}",
            image_size=image_size,
            in_channels=in_channels,
            num_classes=num_classes,
        )
    except Exception as err:  # noqa: BLE001  (any exporter failure becomes the engine's failure reason)
        return {"error": _one_line(err)}


# ---- best kernel -------------------------------------------------------------------------------------------

# A 3x3 convolution as ResNet's early stages run it: on CPUs whose GEMM is not the fastest path (oneDNN's
# direct convolutions beat torch's sgemm here) it is the best a framework reaches.
CONV_SHAPE = {"batch": 128, "channels": 64, "spatial": 32}


def _rate(fn, flops: float, sync=None) -> dict[str, float]:
    from medbench.timing import measure_latency

    stats = measure_latency(
        fn,
        sync=sync,
        warmup_min=2,
        stable_window=3,
        min_count=10,
        min_duration_s=1.0,
        max_duration_s=20.0,
        warmup_max_s=10.0,
    )
    return {
        "flops_per_s": flops / (stats.min_ms / 1e3),
        "median_flops_per_s": flops / (stats.p50_ms / 1e3),
        "min_ms": stats.min_ms,
        "p50_ms": stats.p50_ms,
        "calls": stats.count,
    }


# The back-ends whose kernels bound what the engines reach: PyTorch's, the reference framework's. (Each runs
# in this one process, so a back-end added here must not clash with the others on import.)
KERNEL_FRAMEWORKS: tuple[str, ...] = ("torch",)


def _framework_rates(name: str, a: np.ndarray, b: np.ndarray, *, threads: int | None, device: str) -> dict:
    """The rates of framework ``name``'s kernels (none if it is not installed or has no ``kernels``)."""
    from medbench.errors import ConfigError
    from medbench.frameworks import get_framework

    try:
        backend = get_framework(name)
    except ConfigError:  # not installed: the other kernels are the yardstick
        return {}
    return backend.kernel_rates(a=a, b=b, conv_shape=CONV_SHAPE, threads=threads, device=device, rate=_rate)


def kernel_peak(*, threads: int | None = None, device: str = "auto", n: int = 2048) -> dict[str, Any]:
    """The fastest float32 kernels of the installed frameworks: ``n x n`` matrix products (numpy, PyTorch)
    and, with PyTorch, a 3x3 convolution (batch 128, 64->64 channels, 32x32); the best is the ceiling that
    "% of best kernel" divides by (see :mod:`medbench.bench.peak`).

    Each kernel's rate is that of its *fastest* call: on a shared machine the median call is slowed by
    whatever else runs (the median rate is recorded beside it). Threads come from the environment
    (``OMP_NUM_THREADS`` and friends, set by the parent before numpy started) and ``torch.set_num_threads``.
    On a GPU the best PyTorch CUDA kernel is the ceiling the GPU engines are held to.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    rates: dict[str, Any] = {"numpy_matmul": _rate(lambda: a @ b, 2 * n**3)}
    for name in KERNEL_FRAMEWORKS:
        rates.update(_framework_rates(name, a, b, threads=threads, device=device))
    cuda = [k for k in rates if "_cuda_" in k]
    source = max(cuda or rates, key=lambda k: rates[k]["flops_per_s"])
    return {
        "n": n,
        "conv_shape": CONV_SHAPE,
        "dtype": "float32",
        "threads": threads,
        "device": "cuda" if cuda else "cpu",
        "rates": rates,
        "best_kernel_flops_per_s": rates[source]["flops_per_s"],
        "best_kernel_source": source,
    }


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return " ".join(text.split())[:500]
