"""FLOPs of a Keras model on TensorFlow, read from the traced graph (see :mod:`medbench.frameworks.flops`).

The eval-mode forward pass of one image is traced with ``tf.function`` into a concrete function, and every
``Conv2D``, ``DepthwiseConv2dNative`` and ``MatMul``/``BatchMatMul`` op of its graph is counted at its
static shapes (2 x MACs), the convention of the other back-ends. TensorFlow's own profiler
(``tf.compat.v1.profiler``) was not used for the figure: it also counts element-wise ops, and only for op
types that register statistics, so its total depends on how Keras lowered each layer.
"""

from __future__ import annotations

import keras

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


def flops_per_image(model: keras.Model, *, image_size: int, in_channels: int) -> int:
    if keras.backend.backend() != "tensorflow":
        raise ConfigError("Keras FLOPs are counted on the TensorFlow backend only.")
    import tensorflow as tf

    spec = tf.TensorSpec((1, image_size, image_size, in_channels), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return sum(_op_flops(op) for op in graph.get_operations())
