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

:func:`set_small_map_conv` chooses how convolutions on tiny feature maps and max-pooling are computed:
``"xla"`` (the default) hands them to XLA as they are; ``"matmul"`` uses the formulations of
:mod:`medbench.frameworks.jax.small_map` that avoid XLA:CPU's slow kernels, with the same math.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from medbench.errors import ConfigError
from medbench.frameworks.families import HeadConfig
from medbench.frameworks.jax import small_map
from medbench.frameworks.noise import current_mask

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # Flax's convention: new = m * old + (1 - m) * batch; PyTorch says 0.1

conv_init = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")
linear_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


# ---- small-map convolutions and max-pooling: XLA's kernels or matrix products ---------------------------
SMALL_MAP_CONV = ("xla", "matmul")
# A convolution whose output has at most this many positions per image is a matrix product under "matmul":
# XLA:CPU is slow on 2x2 outputs (layer4 at 64 px, and the stride-2 convolution that makes them) and fast
# from 4x4 up, where the patch matrix would only cost memory.
SMALL_MAP_POSITIONS = 4
_NHWC = jax.lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))
_formulation = {"small_map_conv": "xla"}  # the process's choice, set once by the runtime (a setting)


def set_small_map_conv(value: str) -> None:
    """How models built or traced from now on compute small-map convolutions and max-pooling.

    ``"xla"``: ``lax.conv_general_dilated`` and ``reduce_window`` as always. ``"matmul"``: a convolution
    whose output map has at most :data:`SMALL_MAP_POSITIONS` positions is one ``dot_general`` over its
    patches (:func:`~medbench.frameworks.jax.small_map.conv_as_matmul`), and max-pooling is a maximum over
    shifted slices with a first-maximum gradient (:func:`~medbench.frameworks.jax.small_map.max_pool_taps`).
    The choice is read when a step is traced: set it before the first step (``runtime.configure`` does).

    Raises:
        ConfigError: ``value`` is not one of :data:`SMALL_MAP_CONV`.
    """
    if value not in SMALL_MAP_CONV:
        raise ConfigError(
            f"small_map_conv must be one of {', '.join(SMALL_MAP_CONV)}, not {value!r}.",
            "Use 'xla' (XLA's own kernels) or 'matmul' (matrix products on tiny feature maps).",
        )
    _formulation["small_map_conv"] = value


def small_map_conv() -> str:
    """The formulation :func:`set_small_map_conv` chose (``"xla"`` unless told otherwise)."""
    return _formulation["small_map_conv"]


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **options):  # fmt: skip
    """``lax.conv_general_dilated``, or under ``"matmul"`` the same convolution as a matrix product when its
    output map is small (and it is a plain NHWC convolution: no dilation, no groups, explicit padding)."""
    plain = (
        small_map_conv() == "matmul"
        and feature_group_count == 1
        and dimension_numbers == _NHWC
        and all(d == 1 for d in (*(lhs_dilation or (1, 1)), *(rhs_dilation or (1, 1))))
        and not isinstance(padding, str)
        and options.get("out_sharding") is None
    )
    if plain:
        (kh, kw), pads = rhs.shape[:2], tuple(tuple(p) for p in padding)
        ho = (lhs.shape[1] + sum(pads[0]) - kh) // window_strides[0] + 1
        wo = (lhs.shape[2] + sum(pads[1]) - kw) // window_strides[1] + 1
        if ho * wo <= SMALL_MAP_POSITIONS:
            extra = {k: v for k, v in options.items() if k == "preferred_element_type"}
            return small_map.conv_as_matmul(
                lhs, rhs, tuple(window_strides), pads, precision=precision, **extra
            )
    return jax.lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, precision=precision, **options,
    )  # fmt: skip


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
        conv_general_dilated=conv_general_dilated,
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
    """Max-pooling padded with -inf (as PyTorch), symmetric; see :func:`set_small_map_conv`."""
    if small_map_conv() == "matmul":
        return small_map.max_pool_taps(x, kernel_size, stride, padding)
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
