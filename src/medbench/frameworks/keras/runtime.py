"""Keras runtime: the Keras backend (the framework's: ``keras`` is TensorFlow, ``keras-jax`` JAX, ``keras-torch``
torch), threads, device and the mixed-precision policy, applied before Keras (and its backend) run their first
op. ``KERAS_BACKEND`` is set here, before Keras is imported, since Keras reads it once at import.

TensorFlow's thread pools are fixed when its eager context starts, so
``tf.config.threading.set_intra_op_parallelism_threads`` must come first; :func:`configure` therefore imports
TensorFlow itself, sets them, and only then imports Keras. On Keras' JAX or torch backends the threads are
set the way medbench's JAX or PyTorch back-end sets them.

The catalog's settings (:mod:`medbench.frameworks.settings`): ``tf_onednn`` is ``TF_ENABLE_ONEDNN_OPTS``, set
before TensorFlow is imported; on the JAX and torch backends the settings go to medbench's JAX or PyTorch
runtime, which applies them. ``compile`` is Keras' ``jit_compile``, applied by the backend's training step
(:mod:`medbench.frameworks.keras.steps`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from medbench.config import RuntimeConfig
from medbench.errors import ConfigError
from medbench.frameworks import settings as catalog

DEFAULT_BACKEND = "tensorflow"
# medbench's framework name of each Keras backend: one framework per backend, each in its own process
BACKEND_OF_FRAMEWORK = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}
FRAMEWORK_OF_BACKEND = {backend: name for name, backend in BACKEND_OF_FRAMEWORK.items()}
_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclass
class KerasRuntime:
    settings: RuntimeConfig
    backend: str = DEFAULT_BACKEND
    device: str = "cpu"


def _tf_onednn(wanted: bool) -> None:
    """``TF_ENABLE_ONEDNN_OPTS``, which TensorFlow reads once, when it is imported."""
    value = "1" if wanted else "0"
    if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != value:
        raise ConfigError(
            "TensorFlow is already imported, so runtime.settings.tf_onednn can no longer apply.",
            "Configure before importing TensorFlow, in a fresh process.",
        )
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = value


def _configure_tensorflow(settings: RuntimeConfig, applied: dict[str, Any]) -> str:
    performance = catalog.resolved(settings.settings, "keras")
    _tf_onednn(performance["tf_onednn"])
    import tensorflow as tf

    try:
        if settings.threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
        if settings.interop_threads is not None:
            tf.config.threading.set_inter_op_parallelism_threads(settings.interop_threads)
        gpus = tf.config.list_physical_devices("GPU")
        if settings.device == "cpu" and gpus:
            tf.config.set_visible_devices([], "GPU")
            gpus = []
        for gpu in gpus:  # allocate as needed, as PyTorch and JAX (with preallocation off) do
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as err:  # "... cannot be modified after initialization"
        raise ConfigError(
            f"TensorFlow has already started, so threads/devices can no longer be set ({err}).",
            "Call configure() before any TensorFlow or Keras work, in a fresh process.",
        ) from err
    if settings.device == "gpu" and not gpus:
        raise ConfigError("device='gpu' was asked for, but TensorFlow sees no GPU.", "Use device='cpu'.")
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()
    applied.update(
        threads=tf.config.threading.get_intra_op_parallelism_threads(),
        interop_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        tensorflow=tf.__version__,
        settings={**performance, "TF_ENABLE_ONEDNN_OPTS": os.environ["TF_ENABLE_ONEDNN_OPTS"]},
    )
    if gpus:
        applied["tf32"] = tf.config.experimental.tensor_float_32_execution_enabled()
    return "gpu" if gpus else "cpu"


def _configure_other(backend: str, settings: RuntimeConfig, applied: dict[str, Any]) -> str:
    # the settings and compile are checked for the Keras framework, not for JAX or torch itself
    framework = FRAMEWORK_OF_BACKEND.get(backend, backend)
    if backend == "jax":
        from medbench.frameworks.jax import runtime as jax_runtime

        runtime, jax_applied = jax_runtime.configure(settings, framework=framework)
        applied.update(jax_applied)
        return runtime.backend
    if backend == "torch":
        from medbench.frameworks.torch import runtime as torch_runtime

        runtime, torch_applied = torch_runtime.configure(settings, framework=framework)
        applied.update(torch_applied)
        return runtime.device
    raise ConfigError(f"KERAS_BACKEND={backend!r} is not supported.", "Use tensorflow, jax or torch.")


def _keep_tensorflow_out() -> None:
    """Keras imports TensorFlow, where installed, even on its JAX and torch backends: ``set_random_seed`` seeds
    ``tf.random`` for ``tf.data`` pipelines. That is ~10 s of start-up and a second set of thread pools in a
    process that never runs a TensorFlow op (medbench feeds numpy batches), so Keras is told it is absent.
    (Keras' lazy-module flag is private; without it the only cost is the import.)"""
    if "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False
    except (ImportError, AttributeError):  # another Keras layout: TensorFlow is then imported, nothing breaks
        pass


def configure(settings: RuntimeConfig, *, framework: str = "keras") -> tuple[KerasRuntime, dict[str, Any]]:
    """Sets ``KERAS_BACKEND`` to the backend of ``framework`` (``keras`` -> TensorFlow, ``keras-jax``,
    ``keras-torch``; overriding the environment: the framework name decides, and is what the store records),
    applies ``settings`` to that backend, then imports Keras."""
    backend = BACKEND_OF_FRAMEWORK.get(framework)
    if backend is None:
        raise ConfigError(
            f"{framework!r} is not a Keras framework.", f"Use one of {', '.join(BACKEND_OF_FRAMEWORK)}."
        )
    os.environ["KERAS_BACKEND"] = backend
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != backend:
            raise ConfigError(
                f"Keras is already imported with the {keras.backend.backend()!r} backend, not {backend!r}.",
                "Set KERAS_BACKEND before importing keras, in a fresh process.",
            )
    applied: dict[str, Any] = {"keras_backend": backend}
    if backend == "tensorflow":
        device = _configure_tensorflow(settings, applied)
    else:
        device = _configure_other(backend, settings, applied)
    import keras

    if backend != "tensorflow":
        _keep_tensorflow_out()
    keras.mixed_precision.set_global_policy(_POLICIES[settings.precision])
    applied.update(
        device=device,
        precision=settings.precision,
        dtype_policy=keras.mixed_precision.global_policy().name,
        deterministic=settings.deterministic,
        compile=catalog.check_compile(settings.compile, framework),
        compile_mode=catalog.compile_mode(settings.compile, framework),
    )
    return KerasRuntime(settings, backend, device), applied


def synchronize(runtime: KerasRuntime) -> None:
    """Waits for queued device work. On a CPU, TensorFlow results are materialised when converted to numpy
    (which ``predict`` and the trainer do), so there is nothing to wait for; on a GPU TensorFlow's kernels
    are asynchronous and ``tf.test.experimental.sync_devices()`` waits for them. Other backends sync as
    medbench's back-end for them does."""
    if runtime.backend == "tensorflow" and runtime.device == "gpu":
        import tensorflow as tf

        tf.test.experimental.sync_devices()
    elif runtime.backend == "jax":
        import jax

        jax.effects_barrier()
    elif runtime.backend == "torch" and runtime.device == "cuda":
        import torch

        torch.cuda.synchronize()


def versions() -> dict[str, str]:
    import keras

    out = {"keras": keras.__version__, "keras_backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    return out


def device_name(runtime: KerasRuntime) -> str:
    if runtime.device == "gpu" and runtime.backend == "tensorflow":
        import tensorflow as tf

        gpu = tf.config.list_physical_devices("GPU")[0]
        return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
    from medbench.environment import cpu_model

    return cpu_model() or "cpu"


def gpu_peak(runtime: KerasRuntime):
    """Reads the backend's peak device memory in bytes; None on a CPU."""
    if runtime.device == "cpu":
        return None
    if runtime.backend == "tensorflow":
        import tensorflow as tf

        return lambda: int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
    if runtime.backend == "torch":
        import torch

        return lambda: int(torch.cuda.max_memory_allocated())
    import jax

    device = jax.devices()[0]
    return lambda: (device.memory_stats() or {}).get("peak_bytes_in_use")
