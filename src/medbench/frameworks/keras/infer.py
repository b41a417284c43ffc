"""Keras 3 inference engines for the benchmark (see :mod:`medbench.bench.engines`), and the ONNX export.

One Keras model (``keras.layers``/``keras.ops`` only) measured on each Keras backend. ``KERAS_BACKEND`` is
set by the cell's parent before this process imports anything, so the backend is whatever the engine
asked for; each engine checks it got the backend it measures.

- :func:`prepare_direct`: ``model(x, training=False)``, Keras's eager call (TensorFlow eager ops, or torch
  ops under ``torch.no_grad()``). Never ``model.predict``, which adds a data adapter, a callback loop and
  its own batching to every call and so measures Keras's fit/predict machinery, not inference.
- :func:`prepare_tf_xla`: the call inside ``tf.function(jit_compile=True)``: one XLA program per shape.
- :func:`prepare_jax_jit`: ``jax.jit(model.stateless_call)`` over the variables' values, which is how
  Keras's own JAX predict step runs (an eager call would dispatch every op separately).

Importing this module imports neither Keras nor a backend: the import is timed as the engine's first phase.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medbench.config import RuntimeConfig
from medbench.errors import ConfigError
from medbench.frameworks.checkpoints import read_state_dict
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine, load_engine_model


def _build(request: EngineRequest, phases: Phases, *, backends: tuple[str, ...]):
    """Configures the Keras framework of the backend ``KERAS_BACKEND`` names (the engine's env), builds the
    model and loads the weights."""
    from medbench.frameworks.keras.runtime import DEFAULT_BACKEND, FRAMEWORK_OF_BACKEND  # imports no Keras

    backend = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
    if backend not in backends:
        raise ConfigError(
            f"This Keras engine runs on the {' or '.join(backends)} backend, but KERAS_BACKEND={backend!r}.",
            "Run it through `medbench bench`, which sets KERAS_BACKEND in the engine's fresh process.",
        )
    # the framework keras, keras-jax or keras-torch
    return load_engine_model(FRAMEWORK_OF_BACKEND[backend], request, phases)


def prepare_direct(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """``model(x, training=False)`` on the TensorFlow or torch backend, eagerly."""
    fw, model, info = _build(request, phases, backends=("tensorflow", "torch"))
    if fw.runtime.backend == "tensorflow":
        import tensorflow as tf

        def predict(images: np.ndarray) -> np.ndarray:
            return model(tf.convert_to_tensor(images), training=False).numpy()

    else:
        import keras
        import torch

        def predict(images: np.ndarray) -> np.ndarray:
            with torch.no_grad():  # Keras variables require grad: without this every call records a graph
                return keras.ops.convert_to_numpy(model(images, training=False))

    return PreparedEngine(predict, fw.synchronize, info, fw.gpu_peak())


def prepare_tf_xla(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """The call compiled by XLA through ``tf.function(jit_compile=True)``; one trace per batch size."""
    fw, model, info = _build(request, phases, backends=("tensorflow",))
    import tensorflow as tf

    with phases.phase("compile"):  # wraps only; tracing and XLA compilation happen on the first call
        forward = tf.function(lambda x: model(x, training=False), jit_compile=True)

    def predict(images: np.ndarray) -> np.ndarray:
        return forward(tf.convert_to_tensor(images)).numpy()

    info["compile"] = {"tf.function": {"jit_compile": True}}
    return PreparedEngine(predict, fw.synchronize, info, fw.gpu_peak())


def prepare_jax_jit(request: EngineRequest, phases: Phases) -> PreparedEngine:
    """``jax.jit(model.stateless_call)`` with the variables' values passed in, as Keras's JAX predict."""
    fw, model, info = _build(request, phases, backends=("jax",))
    import jax

    with phases.phase("compile"):  # wraps only; XLA compiles on the first call of each shape
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def forward(trainable, non_trainable, x):
            logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return logits

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(forward(trainable, non_trainable, images))

    info["compile"] = {"jax.jit": "model.stateless_call"}
    return PreparedEngine(predict, fw.synchronize, info, fw.gpu_peak())


# ---- ONNX export ------------------------------------------------------------------------------------------


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
    """Exports the Keras model (TensorFlow backend) with ``weights`` to ONNX through tf2onnx.

    The eval-mode call is traced as a ``tf.function`` with a dynamic batch axis and converted with
    ``tf2onnx.convert.from_function``, which works for Keras 3 models (``from_keras`` expects Keras 2's).
    """
    from medbench.frameworks import get_framework

    fw = get_framework("keras")
    fw.configure(RuntimeConfig(device="cpu"))
    if fw.runtime.backend != "tensorflow":
        raise ConfigError(
            f"The Keras ONNX export needs KERAS_BACKEND=tensorflow, not {fw.runtime.backend!r}."
        )
    net = fw.build_model(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    fw.load_state_dict(net, read_state_dict(weights))
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, image_size, image_size, in_channels), tf.float32, name="images")]
    forward = tf.function(lambda x: net(x, training=False))
    tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=str(path))
    return {"exporter": "tf2onnx.convert.from_function", "opset": opset, "tf2onnx": tf2onnx.__version__}
