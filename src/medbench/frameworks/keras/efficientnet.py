"""EfficientNetV2 (S, M, L) as a Keras 3 functional model, with torchvision's module tree as layer names.

Every layer that holds weights is named by its torch module path (``features.0.0`` the stem conv,
``features.4.0.block.1.0`` a depthwise conv, ``features.4.0.block.2.fc1`` a squeeze conv, ``classifier.1``
the Dense), so the generic converter maps weights by name: Conv2D ``kernel`` (kh, kw, I, O), DepthwiseConv2D
``kernel`` (kh, kw, C, 1), BatchNormalization ``gamma/beta/moving_mean/moving_variance``, Dense ``kernel``
(I, O). Weightless helpers carry the name of the module they belong to plus a suffix (``features.0.0.pad``).
Each block is a nested model named by its path (``features.4.0``), as in torch's module tree. Inputs are
NHWC. Only ``keras.layers``/``keras.ops`` are used, so the model runs on every Keras backend.

The architecture comes from :mod:`medbench.frameworks.efficientnet_spec`, shared with the torch and Flax
versions. What makes the three compute the same function: stride-2 convs pad ``k // 2`` on both sides with
``ZeroPadding2D`` (Keras's "same" would pad only after, shifting the sampling grid; for stride 1 and odd
kernels "same" *is* symmetric), medbench's ``BatchNorm`` (PyTorch's running-variance update) with epsilon
1e-3 and momentum 0.9 (torch's 0.1), and torchvision's initialisation with torch's fan-out rule (Keras's
own fan-out for a depthwise kernel would differ). The model ends in float32 logits under any precision
policy, and draws its initial weights and dropout masks from Keras's global seed.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from medbench.frameworks import efficientnet_spec as spec
from medbench.frameworks.keras.layers import BatchNorm, Dropout, float32_logits, layer_name, mlp_head


def _conv(x, cfg: spec.ConvSpec, name: str, *, bias: bool = False):
    """The conv of a ``Conv2dNormActivation`` (or a squeeze conv when ``bias``), torch-style padding."""
    if cfg.stride > 1 and cfg.padding:
        x = layers.ZeroPadding2D(cfg.padding, name=layer_name(f"{name}.pad"))(x)
        padding = "valid"
    else:
        padding = "same"  # stride 1, odd kernel: the same symmetric k // 2 as torch
    init = keras.initializers.RandomNormal(stddev=spec.conv_init_std(cfg.out_channels, cfg.kernel))
    if cfg.groups == 1:
        conv = layers.Conv2D(
            cfg.out_channels,
            cfg.kernel,
            strides=cfg.stride,
            padding=padding,
            use_bias=bias,
            kernel_initializer=init,
            bias_initializer="zeros",
            name=layer_name(name),
        )
    elif cfg.groups == cfg.in_channels == cfg.out_channels:
        conv = layers.DepthwiseConv2D(
            cfg.kernel,
            strides=cfg.stride,
            padding=padding,
            use_bias=bias,
            depthwise_initializer=init,
            name=layer_name(name),
        )
    else:
        raise ValueError(f"{name}: only plain and depthwise convs occur in EfficientNetV2, got {cfg}")
    return conv(x)


def conv_norm_activation(x, cfg: spec.ConvSpec, name: str):
    """``Conv2dNormActivation``: ``{name}.0`` conv, ``{name}.1`` BatchNorm, ``{name}.2`` SiLU if any."""
    x = _conv(x, cfg, f"{name}.0")
    # medbench's BatchNorm: PyTorch's running-variance update (see keras/layers.py)
    x = BatchNorm(momentum=spec.BN_MOMENTUM_EMA, epsilon=spec.BN_EPS, name=layer_name(f"{name}.1"))(x)
    if cfg.activation:
        x = layers.Activation("silu", name=layer_name(f"{name}.2"))(x)
    return x


def squeeze_excitation(x, cfg: spec.SqueezeSpec, name: str):
    """Global average → ``fc1`` 1x1 conv → SiLU → ``fc2`` 1x1 conv → sigmoid → scales the channels."""
    s = layers.GlobalAveragePooling2D(keepdims=True, name=layer_name(f"{name}.avgpool"))(x)
    s = _conv(s, spec.ConvSpec(cfg.channels, cfg.squeeze_channels, 1, 1, 1, True), f"{name}.fc1", bias=True)
    s = layers.Activation("silu", name=layer_name(f"{name}.activation"))(s)
    s = _conv(s, spec.ConvSpec(cfg.squeeze_channels, cfg.channels, 1, 1, 1, True), f"{name}.fc2", bias=True)
    s = layers.Activation("sigmoid", name=layer_name(f"{name}.scale_activation"))(s)
    return layers.Multiply(name=layer_name(f"{name}.scale"))([s, x])


def mbconv_block(cfg: spec.BlockSpec, name: str) -> keras.Model:
    """torchvision's ``MBConv`` / ``FusedMBConv`` as a nested model named ``name`` (``features.4.0``).

    One sub-model per block, as torch has one module per block: a flat functional graph of
    EfficientNetV2-L is ~1000 layers deep, past the recursion limit of Keras's graph walk. The layers inside
    keep their full PyTorch paths, so the converter finds them by name all the same.
    """
    x = keras.Input((None, None, cfg.in_channels), name=layer_name(f"{name}.input"))
    y = x
    for i, layer in enumerate(cfg.layers):
        if isinstance(layer, spec.SqueezeSpec):
            y = squeeze_excitation(y, layer, f"{name}.block.{i}")
        else:
            y = conv_norm_activation(y, layer, f"{name}.block.{i}")
    if cfg.residual:
        if cfg.stochastic_depth_prob > 0.0:
            # Dropout with one draw per sample is torchvision's StochasticDepth(p, "row"): the sample keeps
            # its whole branch with probability 1 - p, scaled by 1 / (1 - p); identity outside training.
            y = Dropout(
                cfg.stochastic_depth_prob,
                noise_shape=(None, 1, 1, 1),
                name=layer_name(f"{name}.stochastic_depth"),
            )(y)
        y = layers.Add(name=layer_name(f"{name}.add"))([y, x])
    return keras.Model(x, y, name=layer_name(name))


def _classifier_dense(x, units: int, name: str):
    """A classifier Linear with torchvision's init: ``uniform(+-1 / sqrt(units))``, zero bias."""
    bound = spec.linear_init_range(units)
    return layers.Dense(
        units,
        kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
        bias_initializer="zeros",
        name=layer_name(name),
    )(x)


def build_efficientnetv2(
    *, num_classes: int, in_channels: int, image_size: int | None = None, **options: Any
) -> keras.Model:
    """An EfficientNetV2 taking NHWC images of any size and returning float32 logits.

    The caller seeds Keras (``keras.utils.set_random_seed``) and sets the mixed-precision policy first.

    Args:
        num_classes: width of the classifier.
        in_channels: channels of the input images (the stem conv takes them).
        image_size: unused (the input accepts any size); accepted so every family has one builder signature.
        **options: ``variant`` (``"s"``, ``"m"``, ``"l"``), ``dropout``, ``stochastic_depth_prob``, ``head``
            (``"linear"`` or ``"mlp"``), ``head_hidden``; see
            :class:`~medbench.frameworks.efficientnet_spec.EfficientNetV2Config`.

    Raises:
        ConfigError: an unknown option or variant, or a probability outside [0, 1).
    """
    del image_size
    cfg = spec.EfficientNetV2Config.from_options(options)
    stem_channels, last_channels = spec.head_channels(cfg.variant)
    plan = spec.block_plan(cfg.variant, cfg.stochastic_depth_prob)

    inputs = keras.Input((None, None, in_channels), name="images")
    x = conv_norm_activation(inputs, spec.ConvSpec(in_channels, stem_channels, 3, 2, 1, True), "features.0")
    for s, stage in enumerate(plan, start=1):
        for b, block in enumerate(stage):
            x = mbconv_block(block, f"features.{s}.{b}")(x)
    head = spec.ConvSpec(plan[-1][-1].out_channels, last_channels, 1, 1, 1, True)
    x = conv_norm_activation(x, head, f"features.{len(plan) + 1}")
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    classifier = cfg.head_config
    if classifier.kind == "mlp":  # both Linear layers initialised as torchvision's classifier
        x = mlp_head(x, classifier, num_classes, "classifier", dense=_classifier_dense)
    else:
        x = Dropout(cfg.dropout, name=layer_name("classifier.0"))(x)
        x = _classifier_dense(x, num_classes, "classifier.1")
    return keras.Model(inputs, float32_logits(x), name=f"efficientnetv2_{cfg.variant}")
