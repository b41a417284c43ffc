"""EfficientNetV2 (S, M, L) in Flax NNX, with torchvision's module tree.

Attribute paths mirror torchvision's ``state_dict`` keys: the flat state path
``('features', 4, 0, 'block', 2, 'fc1', 'kernel')`` is torch's ``features.4.0.block.2.fc1.weight``, so the
generic converter maps every parameter by name (conv ``kernel`` (kh, kw, I/groups, O) ↔ torch (O, I/groups,
kh, kw), depthwise included; BatchNorm ``scale/bias/mean/var``; Linear ``kernel`` (I, O)). Inputs are NHWC.
The architecture comes from :mod:`medbench.frameworks.efficientnet_spec`, shared with the torch and Keras
versions. What makes the three compute the same function: explicit symmetric padding ``k // 2`` (never
"SAME", which pads stride-2 convs asymmetrically), medbench's ``BatchNorm`` (PyTorch's running-variance
update) with epsilon 1e-3 and momentum 0.9 (torch's 0.1), and torchvision's initialisation with torch's
fan-out rule.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medbench.frameworks import efficientnet_spec as spec
from medbench.frameworks.jax.layers import (
    Activation,
    BatchNorm,
    Dropout,
    Sequential,
    conv_general_dilated,
    mlp_head,
)


def _normal(std: float) -> nnx.Initializer:
    """``normal(0, std)``, drawn at a power-of-two length and cut to shape.

    Eagerly, JAX compiles one random-number program per distinct shape, and EfficientNetV2-S has hundreds:
    its construction took ~40 s of compiling alone. Drawing at ~20 bucket lengths and cutting on the host
    takes it to a few seconds; under tracing (``nnx.eval_shape``, ``jit``) the same values come from jnp.
    """

    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        n = math.prod(shape)
        draw = jax.random.normal(key, (1 << max(0, (n - 1).bit_length()),), jnp.float32)
        if isinstance(draw, jax.core.Tracer):
            return (draw[:n].reshape(shape) * std).astype(dtype)
        return jnp.asarray(np.asarray(draw)[:n].reshape(shape) * np.float32(std), dtype)

    return init


def _symmetric_uniform(bound: float) -> nnx.Initializer:
    def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _conv(
    c_in: int,
    c_out: int,
    kernel: int,
    *,
    stride: int = 1,
    groups: int = 1,
    bias: bool,
    dtype: Any,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    pad = (kernel - 1) // 2
    return nnx.Conv(
        c_in,
        c_out,
        (kernel, kernel),
        strides=stride,
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=_normal(spec.conv_init_std(c_out, kernel)),
        bias_init=nnx.initializers.zeros_init(),
        dtype=dtype,
        conv_general_dilated=conv_general_dilated,  # small maps as matrix products, if chosen
        rngs=rngs,
    )


def conv_norm_activation(cfg: spec.ConvSpec, *, dtype: Any, rngs: nnx.Rngs) -> Sequential:
    """``Conv2dNormActivation``: ``0`` conv (no bias), ``1`` BatchNorm, ``2`` SiLU when ``cfg.activation``."""
    conv = _conv(
        cfg.in_channels,
        cfg.out_channels,
        cfg.kernel,
        stride=cfg.stride,
        groups=cfg.groups,
        bias=False,
        dtype=dtype,
        rngs=rngs,
    )
    # medbench's BatchNorm: PyTorch's running-variance update and float32 statistics (see jax/layers.py)
    norm = BatchNorm(
        cfg.out_channels, momentum=spec.BN_MOMENTUM_EMA, epsilon=spec.BN_EPS, dtype=dtype, rngs=rngs
    )
    layers = [conv, norm, Activation(nnx.silu)] if cfg.activation else [conv, norm]
    return Sequential(layers)


class SqueezeExcitation(nnx.Module):
    """Global average → ``fc1`` 1x1 conv → SiLU → ``fc2`` 1x1 conv → sigmoid → scales the channels."""

    def __init__(self, cfg: spec.SqueezeSpec, *, dtype: Any, rngs: nnx.Rngs):
        self.fc1 = _conv(cfg.channels, cfg.squeeze_channels, 1, bias=True, dtype=dtype, rngs=rngs)
        self.fc2 = _conv(cfg.squeeze_channels, cfg.channels, 1, bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        scale = jnp.mean(x, axis=(1, 2), keepdims=True)
        scale = nnx.sigmoid(self.fc2(nnx.silu(self.fc1(scale))))
        return scale * x


class MBConvBlock(nnx.Module):
    """torchvision's ``MBConv`` / ``FusedMBConv``; ``stochastic_depth`` drops the branch per sample."""

    def __init__(self, cfg: spec.BlockSpec, *, dtype: Any, rngs: nnx.Rngs):
        self.use_res_connect = cfg.residual
        self.block = Sequential(
            SqueezeExcitation(layer, dtype=dtype, rngs=rngs)
            if isinstance(layer, spec.SqueezeSpec)
            else conv_norm_activation(layer, dtype=dtype, rngs=rngs)
            for layer in cfg.layers
        )
        # Dropout broadcast over H, W, C is torchvision's StochasticDepth(p, "row"): keep the sample's whole
        # branch with probability 1 - p and scale it by 1 / (1 - p).
        # only a residual branch is ever dropped: elsewhere rate 0, so no noise site is listed it never uses
        p = cfg.stochastic_depth_prob if cfg.residual else 0.0
        self.stochastic_depth = Dropout(p, broadcast_dims=(1, 2, 3), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + x
        return result


class EfficientNetV2(nnx.Module):
    """``features`` (stem, stages, head conv) → global average pool → ``classifier``.

    ``classifier`` is Dropout, Linear; or, with ``head="mlp"``, Dropout, Linear, ReLU, Linear
    (:func:`~medbench.frameworks.jax.models.mlp_head`).
    """

    def __init__(
        self,
        cfg: spec.EfficientNetV2Config,
        *,
        num_classes: int,
        in_channels: int = 3,
        dtype: Any = None,
        rngs: nnx.Rngs,
    ):
        stem_channels, last_channels = spec.head_channels(cfg.variant)
        plan = spec.block_plan(cfg.variant, cfg.stochastic_depth_prob)
        stem = spec.ConvSpec(in_channels, stem_channels, 3, 2, 1, True)
        head = spec.ConvSpec(plan[-1][-1].out_channels, last_channels, 1, 1, 1, True)
        self.features = Sequential(
            [
                conv_norm_activation(stem, dtype=dtype, rngs=rngs),
                *(
                    Sequential(MBConvBlock(block, dtype=dtype, rngs=rngs) for block in stage)
                    for stage in plan
                ),
                conv_norm_activation(head, dtype=dtype, rngs=rngs),
            ]
        )

        def make_linear(in_features: int, out_features: int) -> nnx.Linear:
            # torchvision's classifier init, U(+-1/sqrt(out_features)) and zero bias, for every Linear
            return nnx.Linear(
                in_features,
                out_features,
                kernel_init=_symmetric_uniform(spec.linear_init_range(out_features)),
                bias_init=nnx.initializers.zeros_init(),
                dtype=dtype,
                rngs=rngs,
            )

        if cfg.head == "mlp":
            self.classifier = mlp_head(
                last_channels, num_classes, cfg.head_config, make_linear=make_linear, rngs=rngs
            )
        else:
            linear = make_linear(last_channels, num_classes)
            self.classifier = Sequential([Dropout(cfg.dropout, rngs=rngs), linear])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.mean(self.features(x), axis=(1, 2))
        return self.classifier(x).astype(jnp.float32)


def build_efficientnetv2(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int | None = None,
    dtype: Any = None,
    rngs: nnx.Rngs | None = None,
    **options: Any,
) -> EfficientNetV2:
    """An EfficientNetV2 taking NHWC input and returning float32 logits, in training mode.

    Args:
        num_classes: width of the classifier.
        in_channels: channels of the input images (the stem conv takes them).
        image_size: unused (the pooling is global); accepted so every family has one builder signature.
        dtype: compute dtype (``None`` = float32); parameters and BatchNorm statistics stay float32.
        rngs: the random streams for initialisation and dropout (``nnx.Rngs(0)`` when omitted).
        **options: ``variant`` (``"s"``, ``"m"``, ``"l"``), ``dropout``, ``stochastic_depth_prob``, ``head``,
            ``head_hidden``; see
            :class:`~medbench.frameworks.efficientnet_spec.EfficientNetV2Config`.

    Raises:
        ConfigError: an unknown option or variant, or a probability outside [0, 1).
    """
    del image_size
    cfg = spec.EfficientNetV2Config.from_options(options)
    rngs = nnx.Rngs(0) if rngs is None else rngs
    return EfficientNetV2(cfg, num_classes=num_classes, in_channels=in_channels, dtype=dtype, rngs=rngs)
