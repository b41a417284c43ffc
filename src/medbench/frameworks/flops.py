"""The one FLOP convention every back-end reports, and the formulas it rests on.

``flops`` = 2 x multiply-accumulates of the convolutions and matrix products (dense layers) of one forward
pass of one image, in evaluation mode. Element-wise work (BatchNorm, activations, pooling, residual adds)
is not counted. This is what ``torch.utils.flop_counter.FlopCounterMode`` reports, so the PyTorch figure is
the counter's own; the JAX figure walks the ``jaxpr`` of the jitted forward pass and the TensorFlow figure
walks the ops of the traced ``tf.function`` graph, applying the formulas below to their static shapes.
Note: torchvision's documentation (and fvcore) quote MACs as "GFLOPS": ResNet-50 at 224 px is 4.1 GMACs
there and 8.2 GFLOPs here. Numpy-free, framework-free.
"""

from __future__ import annotations

from math import prod

CONVENTION = "2*MACs of conv and matmul ops, forward, per image; element-wise ops not counted"


def conv_flops(output_shape: tuple[int, ...], kernel_spatial: tuple[int, ...], in_per_group: int) -> int:
    """FLOPs of a (grouped) convolution: every output element is ``prod(kernel) * in_per_group`` MACs."""
    return 2 * prod(output_shape) * prod(kernel_spatial) * in_per_group


def matmul_flops(output_shape: tuple[int, ...], contracted: int) -> int:
    """FLOPs of a matrix product whose output has ``output_shape`` and contracts ``contracted`` elements."""
    return 2 * prod(output_shape) * contracted
