"""FLOPs of a Flax model, read from JAX's own trace (see :mod:`medbench.frameworks.flops`).

:func:`flops_per_image` walks the ``jaxpr`` of the eval-mode forward pass and counts every
``conv_general_dilated`` and ``dot_general`` at its static shapes (2 x MACs), the convention of the other
back-ends (XLA's own ``cost_analysis()`` also counts element-wise work, BatchNorm, ReLU and adds, so it is
not that convention).
"""

from __future__ import annotations

from math import prod

import jax
import jax.numpy as jnp
from flax import nnx

from medbench.frameworks.flops import conv_flops, matmul_flops
from medbench.frameworks.jax.train import mode_view


def _forward(model: nnx.Module, image_size: int, in_channels: int):
    graphdef, state = nnx.split(mode_view(model, train=False))
    x = jnp.zeros((1, image_size, image_size, in_channels), jnp.float32)
    return (lambda s, x: nnx.merge(graphdef, s)(x)), state, x


def _sub_jaxprs(params: dict):
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def jaxpr_flops(jaxpr) -> int:
    """2 x MACs of every convolution and matrix product in ``jaxpr`` (and in the jaxprs it calls)."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) axes of the kernel
            spatial = tuple(rhs[d] for d in rhs_spec[2:])
            total += conv_flops(eqn.outvars[0].aval.shape, spatial, rhs[rhs_spec[1]])
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += matmul_flops(eqn.outvars[0].aval.shape, prod(lhs[d] for d in contract))
        for sub in _sub_jaxprs(eqn.params):
            total += jaxpr_flops(sub)
    return total


def flops_per_image(model: nnx.Module, *, image_size: int, in_channels: int) -> int:
    fn, state, x = _forward(model, image_size, in_channels)
    return jaxpr_flops(jax.make_jaxpr(fn)(state, x).jaxpr)
