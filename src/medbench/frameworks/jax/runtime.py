"""JAX runtime: XLA flags, CPU threads, platform and compute dtype, applied before the XLA backend starts.

Threads: XLA has no flag for its CPU thread count (``intra_op_parallelism_threads`` is an
``ExecutionOptions`` field, not an ``XLA_FLAGS`` flag: written there without dashes it is silently ignored).
XLA sizes its CPU thread pool from the cores the process may run on, so ``threads=N`` pins the process to
N of its allowed cores (``os.sched_setaffinity``, Linux), and ``threads=1`` also sets
``--xla_cpu_multi_thread_eigen=false``. The pinning covers the whole process, data loading included.
Both must happen before the backend initialises (the first computation), hence :func:`configure` first.

The catalog's settings (:mod:`medbench.frameworks.settings`): ``xla_flags`` are appended to ``XLA_FLAGS``
with the thread flags; ``small_map_conv`` is handed to ``medbench.frameworks.jax.layers.set_small_map_conv``
where that function exists (``applied`` says whether it did). ``compile``: the JAX trainer is always one
jitted step, so ``true`` and ``None`` are the same and ``false`` is refused.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from medbench.config import RuntimeConfig
from medbench.errors import ConfigError
from medbench.frameworks import settings as catalog

_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class JaxRuntime:
    settings: RuntimeConfig
    backend: str = "cpu"
    dtype: Any = None  # compute dtype of the model; parameters stay float32
    last: list = field(default_factory=list)  # the latest device output, for synchronize()

    def keep(self, value: Any) -> Any:
        """Remembers ``value`` as the latest output, so :func:`synchronize` can wait for it."""
        self.last[:] = [value]
        return value


def _backends_started() -> bool:
    import sys

    if "jax" not in sys.modules:
        return False
    with contextlib.suppress(ImportError, AttributeError):
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    return False


def thread_flags(settings: RuntimeConfig) -> list[str]:
    flags = []
    if settings.threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    if settings.deterministic:
        flags.append("--xla_gpu_deterministic_ops=true")
    extra = settings.settings.get("xla_flags", "")
    return flags + extra.split()


def pin_threads(threads: int) -> list[int]:
    """Restricts this process to the first ``threads`` of its allowed cores; returns them."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ConfigError(f"threads={threads} but this process may use only {len(allowed)} cores.")
    chosen = allowed[:threads]
    os.sched_setaffinity(0, chosen)
    return chosen


def configure(settings: RuntimeConfig, *, framework: str = "jax") -> tuple[JaxRuntime, dict[str, Any]]:
    """Applies ``settings`` before JAX's backend starts; ``framework`` is ``keras-jax`` when Keras' JAX
    backend configures JAX through here (its settings and ``compile`` are then checked for that framework)."""
    performance = catalog.resolved(settings.settings, framework)
    compiled = catalog.check_compile(settings.compile, framework)
    if _backends_started() and (thread_flags(settings) or settings.threads is not None):
        raise ConfigError(
            "JAX's backend is already running, so XLA flags and thread pinning can no longer apply.",
            "Call configure() before any JAX computation, in a fresh process.",
        )
    applied: dict[str, Any] = {}
    flags = [f for f in thread_flags(settings) if f not in os.environ.get("XLA_FLAGS", "")]
    if flags:
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    if settings.threads is not None and hasattr(os, "sched_setaffinity"):
        applied["cpu_affinity"] = pin_threads(settings.threads)
    if settings.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    if settings.device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    # One device: the partitionable threefry (JAX's default since 0.5, for sharded random generation) buys
    # nothing here and makes compiling each initialiser 2-3x slower on CPU (model build: 13 s -> 5 s).
    jax.config.update("jax_threefry_partitionable", False)
    backend = jax.default_backend()
    if settings.device == "gpu" and backend != "gpu":
        raise ConfigError("device='gpu' was asked for, but JAX sees no GPU.", "Install jax[cuda] or use cpu.")
    dtype_name = _DTYPES[settings.precision]
    runtime = JaxRuntime(settings, backend, getattr(jax.numpy, dtype_name) if dtype_name else None)
    applied.update(
        threads=settings.threads,
        interop_threads=None,  # XLA has no separate inter-op pool to size
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        device=backend,
        precision=settings.precision,
        compute_dtype=dtype_name or "float32",
        param_dtype="float32",
        threefry_partitionable=False,
        deterministic=settings.deterministic,
        compile=compiled,
        compile_mode=catalog.compile_mode(settings.compile, framework),
        settings=performance,
    )
    if framework == "jax":
        applied.update(_small_map_conv(performance["small_map_conv"]))
    return runtime, applied


def _small_map_conv(value: str) -> dict[str, Any]:
    """Hands the setting to the JAX layers, where the formulation lives (read when a step is traced)."""
    from medbench.frameworks.jax import layers

    layers.set_small_map_conv(value)
    return {"small_map_conv_applied": True}


def synchronize(runtime: JaxRuntime) -> None:
    """Blocks on the latest output JAX dispatched (asynchronously), then on pending effects."""
    import jax

    if runtime.last:
        jax.block_until_ready(runtime.last[0])
    jax.effects_barrier()


def versions() -> dict[str, str]:
    import flax
    import jax
    import jaxlib
    import optax

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
    }


def device_name(runtime: JaxRuntime) -> str:
    import jax

    if runtime.backend != "cpu":
        return jax.devices()[0].device_kind
    from medbench.environment import cpu_model

    return cpu_model() or "cpu"


def gpu_peak(runtime: JaxRuntime):
    """Reads the device's peak bytes in use (XLA's memory statistics); None on a CPU."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    return lambda: (device.memory_stats() or {}).get("peak_bytes_in_use")
