"""FLOPs of a Keras model, counted on its backend's own trace (see :mod:`medbench.frameworks.flops`).

On JAX and torch the count is the one medbench's JAX and PyTorch back-ends make (the jaxpr's convolutions
and matrix products; ``torch.utils.flop_counter``), over the Keras model's eval-mode call. On TensorFlow:

The eval-mode forward pass of one image is traced with ``tf.function`` into a concrete function, and every
``Conv2D``, ``DepthwiseConv2dNative`` and ``MatMul``/``BatchMatMul`` op of its graph is counted at its
static shapes (2 x MACs), the convention of the other back-ends. TensorFlow's own profiler
(``tf.compat.v1.profiler``) was not used for the figure: it also counts element-wise ops, and only for op
types that register statistics, so its total depends on how Keras lowered each layer.
"""

from __future__ import annotations

import keras
import numpy as np

from medbench.errors import ConfigError
from medbench.frameworks.flops import conv_flops, matmul_flops


def _op_flops(op) -> int:
    def shape(t):
        return tuple(int(d) for d in t.shape)

    if op.type in ("Conv2D", "DepthwiseConv2dNative"):
        kh, kw, cin, _ = shape(op.inputs[1])  # HWIO, or (kh, kw, C, multiplier) for depthwise
        in_per_group = 1 if op.type == "DepthwiseConv2dNative" else cin
        return conv_flops(shape(op.outputs[0]), (kh, kw), in_per_group)
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        a = shape(op.inputs[0])
        transpose = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
        return matmul_flops(shape(op.outputs[0]), a[-2] if transpose else a[-1])
    return 0


def _jax_flops(model: keras.Model, x: np.ndarray) -> int:
    import jax

    from medbench.frameworks.jax.profile import jaxpr_flops

    state = list(model.variables)

    def forward(values, x):
        with keras.StatelessScope(state_mapping=list(zip(state, values, strict=True))):
            return model(x, training=False)

    return jaxpr_flops(jax.make_jaxpr(forward)([v.value for v in state], x).jaxpr)


def _torch_flops(model: keras.Model, x: np.ndarray) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, training=False)
    return int(counter.get_total_flops())


def flops_per_image(model: keras.Model, *, image_size: int, in_channels: int) -> int:
    backend = keras.backend.backend()
    if backend in ("jax", "torch"):
        x = np.zeros((1, image_size, image_size, in_channels), np.float32)
        return (_jax_flops if backend == "jax" else _torch_flops)(model, x)
    if backend != "tensorflow":
        raise ConfigError(f"Keras FLOPs are not counted on the {backend!r} backend.")
    import tensorflow as tf

    spec = tf.TensorSpec((1, image_size, image_size, in_channels), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return sum(_op_flops(op) for op in graph.get_operations())
