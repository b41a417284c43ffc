"""Formulations of a convolution and of max-pooling that avoid XLA:CPU's slow kernels, with the same math.

XLA:CPU runs a 3x3 convolution on a 2x2 feature map (ResNet-18's ``layer4`` at 64 px input) at a few
GFLOP/s, about 70x slower than on a 4x4 map, and the gradient of the stride-2 3x3 convolution that makes
that map (4x4 -> 2x2) about 10x slower than its forward pass; its max-pool gradient (``select_and_scatter``)
costs over ten times the pooling itself. Measured on a 2-core AVX-512 EPYC, batch 32, under load (see
``benchmarks/bench_small_map.py``): the 2x2 convolution 814 ms forward against 12 ms as a matrix product.

* :func:`conv_as_matmul`: a convolution as one matrix product over its patches (im2col + ``dot_general``).
  The patches are strided slices of the padded input, so the gradient (which JAX derives) is slices, pads
  and matrix products: no convolution anywhere. Taps that only ever read padding are left out.
* :func:`max_pool_taps`: max-pooling as the maximum over the window's shifted slices, with a
  ``jax.custom_vjp`` gradient that sends each output's gradient to the *first* maximal element of its window
  in row-major order, the element ``select_and_scatter`` (XLA) and PyTorch pick, so ties (zeros after a ReLU)
  go where they went before.

Both compute exactly what ``lax.conv_general_dilated`` / ``lax.reduce_window`` compute, up to the order of
float additions (the tests hold outputs and gradients to 1e-5 relative). Which layers use them is
:func:`medbench.frameworks.jax.layers.set_small_map_conv`'s choice.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Pads = tuple[tuple[int, int], tuple[int, int]]


def _out_size(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> int:
    return (size + pads[0] + pads[1] - kernel) // stride + 1


def _rows(start: int, stride: int, count: int) -> range:
    return range(start, start + stride * (count - 1) + 1, stride)


def _tap(xp, i: int, j: int, strides: tuple[int, int], out: tuple[int, int]):
    """The input under kernel tap ``(i, j)`` for every output position: a strided slice of the padded input."""
    (sh, sw), (ho, wo) = strides, out
    return xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]


def conv_as_matmul(x, kernel, strides: tuple[int, int], padding: Pads, *, precision=None, **dot_options):
    """``lax.conv_general_dilated(x, kernel, strides, padding)`` for NHWC ``x`` and an HWIO ``kernel``
    (no dilation, no groups), as one ``dot_general`` over the patches: ``(N, Ho, Wo, taps x Cin) @
    (taps x Cin, Cout)``."""
    n, h, w, cin = x.shape
    kh, kw, kin, cout = kernel.shape
    if kin != cin:
        raise ValueError(f"conv_as_matmul takes ungrouped convolutions: {cin} input channels, kernel {kin}")
    out = (_out_size(h, kh, strides[0], padding[0]), _out_size(w, kw, strides[1], padding[1]))
    real_h = range(padding[0][0], padding[0][0] + h)
    real_w = range(padding[1][0], padding[1][0] + w)
    # a tap whose rows (or columns) all fall into the padding multiplies zeros only: left out
    taps = [
        (i, j)
        for i in range(kh)
        for j in range(kw)
        if set(_rows(i, strides[0], out[0])) & set(real_h) and set(_rows(j, strides[1], out[1])) & set(real_w)
    ]
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    patches = jnp.concatenate([_tap(xp, i, j, strides, out) for i, j in taps], axis=-1)
    # (taps x Cin, Cout) in patch order: a reshape when every tap is kept (free, and so is its gradient;
    # slicing tap by tap would pad each tap's gradient back to the whole kernel), else one gather
    weights = kernel.reshape(kh * kw, cin, cout)
    if len(taps) < kh * kw:
        weights = weights[np.array([i * kw + j for i, j in taps])]
    weights = weights.reshape(len(taps) * cin, cout)
    return lax.dot_general(patches, weights, (((3,), (0,)), ((), ())), precision=precision, **dot_options)


def _pool_geometry(x, window: int, stride: int, padding: int):
    out = (
        _out_size(x.shape[1], window, stride, (padding,) * 2),
        _out_size(x.shape[2], window, stride, (padding,) * 2),
    )
    pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    xp = jnp.pad(x, pads, constant_values=-jnp.inf)  # as PyTorch and XLA: padding never wins
    return xp, out


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool_taps(x, window: int, stride: int, padding: int):
    """Max-pooling of NHWC ``x`` over ``window x window`` windows, ``-inf`` padding; see the module docstring."""
    return _pool_forward(x, window, stride, padding)[0]


def _pool_forward(x, window, stride, padding):
    xp, out = _pool_geometry(x, window, stride, padding)
    taps = [_tap(xp, i, j, (stride, stride), out) for i in range(window) for j in range(window)]
    best = taps[0]
    for tap in taps[1:]:
        best = jnp.maximum(best, tap)
    return best, xp


def _pool_fwd(x, window, stride, padding):
    best, xp = _pool_forward(x, window, stride, padding)
    return best, (xp, best)


def _pool_bwd(window, stride, padding, residuals, grad):
    xp, best = residuals
    (ho, wo), (hp, wp) = best.shape[1:3], xp.shape[1:3]
    zero = jnp.zeros((), grad.dtype)
    taken = jnp.zeros(best.shape, bool)
    dxp = jnp.zeros(xp.shape, grad.dtype)
    for i in range(window):
        for j in range(window):
            # row-major order, first maximum wins: select_and_scatter's ``ge`` selection
            hit = (_tap(xp, i, j, (stride, stride), (ho, wo)) == best) & ~taken
            taken = taken | hit
            # the transpose of the tap's strided slice: zeros between (interior) and around it
            spread = (
                (0, 0, 0),
                (i, hp - i - stride * (ho - 1) - 1, stride - 1),
                (j, wp - j - stride * (wo - 1) - 1, stride - 1),
                (0, 0, 0),
            )
            dxp = dxp + lax.pad(jnp.where(hit, grad, zero), zero, spread)
    h, w = hp - 2 * padding, wp - 2 * padding
    return (dxp[:, padding : padding + h, padding : padding + w, :],)


max_pool_taps.defvjp(_pool_fwd, _pool_bwd)
