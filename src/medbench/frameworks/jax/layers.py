"""Flax NNX building blocks that compute exactly what their PyTorch counterparts compute.

* Convolutions take *explicit symmetric* padding (``kernel // 2`` on each side), never ``"SAME"``: with
  stride 2 XLA's SAME pads the bottom/right only, and the output would shift by a pixel against PyTorch.
* :class:`BatchNorm` follows ``torch.nn.BatchNorm2d``: normalises with the biased batch variance but updates
  ``var`` with the *unbiased* one (``n / (n - 1)``), eps 1e-5, momentum 0.9 here = 0.1 in PyTorch's
  convention. ``nnx.BatchNorm`` would store the biased variance, and eval-mode logits would drift apart.
  Statistics are computed in float32 even when the model computes in bfloat16/float16 (as autocast does).
* Initialisation is torchvision's (see ``frameworks/torch/layers.py``): convs ``variance_scaling(2,
  fan_out, normal)`` = ``kaiming_normal_(fan_out, relu)``; Linear weight ``variance_scaling(1/3, fan_in,
  uniform)`` = ``U(+-1/sqrt(fan_in))`` and the same bound for its bias.

Dtypes: parameters are float32 (``param_dtype``); ``dtype`` is the compute dtype (None = float32).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from medbench.frameworks.families import HeadConfig
from medbench.frameworks.noise import current_mask

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # Flax's convention: new = m * old + (1 - m) * batch; PyTorch says 0.1

conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
linear_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def uniform_bias_init(fan_in: int):
    """PyTorch's Linear/Conv bias: ``U(+-1/sqrt(fan_in))``."""
    bound = 1.0 / fan_in**0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    groups: int = 1,
    bias: bool = False,
    dtype: Any = None,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A convolution with explicit symmetric padding (``kernel_size // 2`` unless told otherwise)."""
    pad = kernel_size // 2 if padding is None else padding
    return nnx.Conv(
        in_channels,
        out_channels,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=conv_init,
        dtype=dtype,
        rngs=rngs,
    )


def linear(in_features: int, out_features: int, *, bias: bool = True, dtype: Any = None, rngs: nnx.Rngs):
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=bias,
        kernel_init=linear_init,
        bias_init=uniform_bias_init(in_features),
        dtype=dtype,
        rngs=rngs,
    )


class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` with PyTorch's statistics (see the module docstring); same variables and views."""

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        if mask is not None:
            raise NotImplementedError("masked batch norm is not supported")
        use_running_average = self.use_running_average if use_running_average is None else use_running_average
        x32 = x.astype(jnp.float32)
        axes = tuple(range(x.ndim - 1))
        if use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            mean = jnp.mean(x32, axes)
            var = jnp.mean(jnp.square(x32 - mean), axes)
            n = x.size // x.shape[-1]
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.mean[...] = jax.lax.stop_gradient(m * self.mean[...] + (1 - m) * mean)
            self.var[...] = jax.lax.stop_gradient(m * self.var[...] + (1 - m) * unbiased)
        # alpha/beta form, as PyTorch's CPU kernel: y = x * alpha + beta
        alpha = self.scale[...] * jax.lax.rsqrt(var + self.epsilon)
        beta = self.bias[...] - mean * alpha
        return (x32 * alpha + beta).astype(self.dtype or x.dtype)


def batch_norm(num_features: int, *, zero_init: bool = False, dtype: Any = None, rngs: nnx.Rngs) -> BatchNorm:
    return BatchNorm(
        num_features,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPS,
        scale_init=nnx.initializers.zeros_init() if zero_init else nnx.initializers.ones_init(),
        dtype=dtype,
        rngs=rngs,
    )


def max_pool(x, kernel_size: int, stride: int, padding: int = 0):
    """Max-pooling padded with -inf (as PyTorch), symmetric."""
    pad = ((padding, padding), (padding, padding))
    return nnx.max_pool(x, (kernel_size, kernel_size), strides=(stride, stride), padding=pad)


class ConvBNReLU(nnx.Module):
    """conv - BatchNorm - ReLU, with the names ``conv`` and ``bn``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        self.conv = conv2d(in_channels, out_channels, kernel_size, stride=stride, dtype=dtype, rngs=rngs)
        self.bn = batch_norm(out_channels, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.bn(self.conv(x)))


class Dropout(nnx.Dropout):
    """``nnx.Dropout`` that takes its mask from the training step when one is handed over (shared noise).

    ``noise_site`` is the module's PyTorch path, set by :func:`tag_noise_sites`; without a handed-over mask
    (native noise, the evaluation view) this is ``nnx.Dropout`` itself, RNG stream included. With
    ``broadcast_dims=(1, 2, 3)`` it is stochastic depth, and the mask is ``(batch, 1, 1, 1)``.
    See :mod:`medbench.frameworks.noise`.
    """

    noise_site: str | None = None

    def __call__(self, inputs, *, deterministic: bool | None = None, rngs=None):
        off = self.deterministic if deterministic is None else deterministic
        mask = None if off or self.rate == 0 else current_mask(self.noise_site)
        if mask is None:
            return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
        return inputs * mask.astype(inputs.dtype)


def tag_noise_sites(model: nnx.Module) -> dict[str, float]:
    """Tells each noise layer its PyTorch path (its masks' site name); returns path -> rate where rate > 0."""
    found = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Dropout):
            name = ".".join(str(p) for p in path)
            module.noise_site = name
            if module.rate > 0:
                found[name] = float(module.rate)
    return found


# ---- containers and the mlp head (ResNet and EfficientNetV2) ---------------------------------------------
class Sequential(nnx.List):
    """``torch.nn.Sequential``: children sit at integer indices of this module, so paths read ``…, 0, …``."""

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self:
            x = layer(x)
        return x


class Activation(nnx.Module):
    """A parameter-free activation, so it can hold an index in a :class:`Sequential` as torch's does."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


def mlp_head(
    in_features: int, num_classes: int, cfg: HeadConfig, *, make_linear, rngs: nnx.Rngs
) -> Sequential:
    """The ``mlp`` head: ``0`` Dropout, ``1`` Linear(in, hidden), ``2`` ReLU, ``3`` Linear(hidden, classes).

    ``make_linear(in_features, out_features)`` builds a Linear layer initialised as the family's own head,
    so each family keeps torchvision's initialisation for both layers.
    """
    return Sequential(
        [
            Dropout(cfg.dropout, rngs=rngs),
            make_linear(in_features, cfg.hidden),
            Activation(nnx.relu),
            make_linear(cfg.hidden, num_classes),
        ]
    )
