"""PyTorch runtime: threads, device, precision, memory format and the catalog's settings (oneDNN), applied once
before any model is built; ``compile`` is read by the trainer (:mod:`medbench.frameworks.torch.train`)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from medbench.config import RuntimeConfig
from medbench.errors import ConfigError
from medbench.frameworks import settings as catalog

_AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class TorchRuntime:
    """What :func:`configure` decided; the back-end reads it when it builds, predicts and trains."""

    settings: RuntimeConfig
    device: str = "cpu"  # "cpu" or "cuda"

    @property
    def autocast_dtype(self):
        import torch

        name = _AUTOCAST[self.settings.precision]
        return getattr(torch, name) if name else None

    def autocast(self):
        """``torch.autocast`` for mixed precision, a no-op context in fp32."""
        import torch

        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=dtype)

    def to_input(self, images):
        """NHWC numpy -> an NCHW tensor on the device; with channels_last it is a view, never a copy.

        A tensor is taken as it is (moved only if it is elsewhere): the GPU check feeds batches already on
        the device through the very same step (benchmarks/gpu_check.py).
        """
        import torch

        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(images)
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return x if self.settings.channels_last else x.contiguous()


def configure(settings: RuntimeConfig, *, framework: str = "torch") -> tuple[TorchRuntime, dict[str, Any]]:
    """Applies ``settings`` to torch and returns the runtime plus what was applied (for the results store).

    ``framework`` is ``keras-torch`` when Keras' torch backend configures torch through here: the catalog's
    settings and ``compile`` are then checked (and recorded) for that framework.
    """
    performance = catalog.resolved(settings.settings, framework)
    compiled = catalog.check_compile(settings.compile, framework)
    if settings.deterministic:  # cuBLAS reads this when CUDA initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    applied: dict[str, Any] = {}
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.interop_threads is not None:
        try:
            torch.set_num_interop_threads(settings.interop_threads)
        except RuntimeError as err:  # only possible before the first parallel work of the process
            applied["interop_threads_error"] = str(err)
    device = _resolve_device(settings.device, torch.cuda.is_available())
    if device == "cuda":
        # JAX and TensorFlow allow TF32 for float32 convs/matmuls on Ampere+ by default; so does this.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = not settings.deterministic
        applied["tf32"] = True
    if settings.deterministic:
        torch.use_deterministic_algorithms(True)
    if "onednn" in performance:
        torch.backends.mkldnn.enabled = performance["onednn"]
    applied.update(
        threads=torch.get_num_threads(),
        interop_threads=torch.get_num_interop_threads(),
        device=device,
        precision=settings.precision,
        autocast_dtype=_AUTOCAST[settings.precision],
        channels_last=settings.channels_last,
        deterministic=torch.are_deterministic_algorithms_enabled(),
        compile=compiled,
        compile_mode=catalog.compile_mode(settings.compile, framework),
        settings={**performance, "onednn": torch.backends.mkldnn.enabled},
    )
    return TorchRuntime(settings, device), applied


def _resolve_device(wanted: str, has_cuda: bool) -> str:
    if wanted == "gpu" and not has_cuda:
        raise ConfigError("device='gpu' was asked for, but PyTorch sees no CUDA device.", "Use device='cpu'.")
    return "cuda" if wanted in ("gpu", "auto") and has_cuda else "cpu"


def synchronize(runtime: TorchRuntime) -> None:
    """Waits for queued CUDA kernels; CPU ops are synchronous, so there it does nothing."""
    if runtime.device == "cuda":
        import torch

        torch.cuda.synchronize()


def versions() -> dict[str, str]:
    import torch

    out = {"torch": torch.__version__}
    with contextlib.suppress(ImportError):
        import safetensors

        out["safetensors"] = safetensors.__version__
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
        out["cudnn"] = str(torch.backends.cudnn.version())
    return out


def device_name(runtime: TorchRuntime) -> str:
    if runtime.device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    from medbench.environment import cpu_model

    return cpu_model() or "cpu"


def gpu_peak(runtime: TorchRuntime):
    """Reads torch's peak allocated CUDA memory in bytes; None on a CPU."""
    import torch

    if runtime.device != "cuda":
        return None
    return lambda: int(torch.cuda.max_memory_allocated())
