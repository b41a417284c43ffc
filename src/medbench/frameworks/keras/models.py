"""Keras 3 model families (functional models) and the dispatch from a registered name to a model.

Every layer with weights is named by its PyTorch module path (``layer1.0.downsample.0``), so ``convert.py``
finds each PyTorch key by layer name. The input is ``(None, None, in_channels)``: any image size runs.

EfficientNetV2 lives in ``efficientnet.py`` beside this file and is imported only when asked for. The
builder this dispatch calls is::

    build_efficientnetv2(*, num_classes: int, in_channels: int, image_size: int, **options) -> keras.Model

with ``options`` the registry's plus user overrides. The caller has seeded Keras
(``keras.utils.set_random_seed``) and set the mixed-precision policy; the model must end in float32 logits
(:func:`medbench.frameworks.keras.layers.float32_logits`) and name its weighted layers by PyTorch path.
"""

from __future__ import annotations

import sys
from typing import Any

import keras
import numpy as np
from keras import layers

from medbench.errors import ConfigError
from medbench.frameworks.families import ResNetConfig, SimpleCNNConfig
from medbench.frameworks.keras.layers import (
    Dropout,
    batch_norm,
    conv2d,
    conv_bn_relu,
    float32_logits,
    layer_name,
    linear,
    max_pool,
    mlp_head,
    relu,
)


def _inputs(in_channels: int):
    return keras.Input((None, None, in_channels), name="images")


# ---- SimpleCNN ---------------------------------------------------------------------------------------------
def simple_cnn(cfg: SimpleCNNConfig, *, num_classes: int, in_channels: int) -> keras.Model:
    inputs = x = _inputs(in_channels)
    for i, width in enumerate(cfg.widths):
        for j in range(cfg.convs_per_block):
            x = conv_bn_relu(x, width, f"blocks.{i}.{j}")
        x = max_pool(x, 2, 2, f"blocks.{i}.pool")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = relu(linear(x, cfg.hidden, "fc1"), "relu")
    x = Dropout(cfg.dropout, name="dropout")(x)
    return keras.Model(inputs, float32_logits(linear(x, num_classes, "fc2")), name="simple_cnn")


# ---- ResNet (torchvision v1.5 layout) ----------------------------------------------------------------------
def _downsample(x, filters: int, stride: int, name: str):
    return batch_norm(conv2d(x, filters, 1, f"{name}.0", stride=stride), f"{name}.1")


def basic_block(x, planes: int, stride: int, name: str, *, downsample: bool, zero_init: bool):
    identity = _downsample(x, planes, stride, f"{name}.downsample") if downsample else x
    out = relu(
        batch_norm(conv2d(x, planes, 3, f"{name}.conv1", stride=stride), f"{name}.bn1"), f"{name}.relu1"
    )
    out = batch_norm(conv2d(out, planes, 3, f"{name}.conv2"), f"{name}.bn2", zero_init=zero_init)
    return relu(layers.Add(name=layer_name(f"{name}.add"))([out, identity]), f"{name}.relu")


def bottleneck(x, planes: int, stride: int, name: str, *, downsample: bool, zero_init: bool):
    identity = _downsample(x, planes * 4, stride, f"{name}.downsample") if downsample else x
    out = relu(batch_norm(conv2d(x, planes, 1, f"{name}.conv1"), f"{name}.bn1"), f"{name}.relu1")
    out = conv2d(out, planes, 3, f"{name}.conv2", stride=stride)  # v1.5: the stride sits in the 3x3 conv
    out = relu(batch_norm(out, f"{name}.bn2"), f"{name}.relu2")
    out = batch_norm(conv2d(out, planes * 4, 1, f"{name}.conv3"), f"{name}.bn3", zero_init=zero_init)
    return relu(layers.Add(name=layer_name(f"{name}.add"))([out, identity]), f"{name}.relu")


def resnet(cfg: ResNetConfig, *, num_classes: int, in_channels: int) -> keras.Model:
    block = bottleneck if cfg.block == "bottleneck" else basic_block
    inputs = x = _inputs(in_channels)
    if cfg.small_input:
        x = relu(batch_norm(conv2d(x, 64, 3, "conv1"), "bn1"), "relu")
    else:
        x = relu(batch_norm(conv2d(x, 64, 7, "conv1", stride=2), "bn1"), "relu")
        x = max_pool(x, 3, 2, "maxpool", padding=1)
    inplanes = 64
    for i, (planes, blocks, stride) in enumerate(cfg.stages(), start=1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            downsample = b == 0 and (stride != 1 or inplanes != planes * cfg.expansion)
            x = block(x, planes, s, f"layer{i}.{b}", downsample=downsample, zero_init=cfg.zero_init_residual)
            inplanes = planes * cfg.expansion
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    # the mlp head is fc.0 .. fc.3, both Linear layers with PyTorch's default init as torchvision's own fc
    head = cfg.head_config
    x = mlp_head(x, head, num_classes, "fc") if head.kind == "mlp" else linear(x, num_classes, "fc")
    name = f"resnet{2 + 2 * sum(cfg.layers) if cfg.block == 'basic' else 2 + 3 * sum(cfg.layers)}"
    return keras.Model(inputs, float32_logits(x), name=name)


# ---- dispatch ----------------------------------------------------------------------------------------------
def build(family: str, options: dict[str, Any], *, num_classes: int, in_channels: int, image_size: int):
    """The model for ``family``; the caller seeds Keras and sets the dtype policy first."""
    if family == "simple_cnn":
        cfg = SimpleCNNConfig.from_options(options, image_size)
        return simple_cnn(cfg, num_classes=num_classes, in_channels=in_channels)
    if family == "resnet":
        cfg = ResNetConfig.from_options(options, image_size)
        return resnet(cfg, num_classes=num_classes, in_channels=in_channels)
    if family == "efficientnetv2":
        from medbench.frameworks.keras import efficientnet

        # Keras maps a functional graph recursively, one Python frame per layer: EfficientNetV2-L is deeper
        # than Python's default limit of 1000 frames
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))

        return efficientnet.build_efficientnetv2(
            num_classes=num_classes, in_channels=in_channels, image_size=image_size, **options
        )
    raise ConfigError(f"The keras back-end has no model family {family!r}.")


# ---- the back-end contract (medbench.frameworks.base.ModelsModule) -----------------------------------------
def build_model(
    rt,
    family: str,
    options: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    seed: int,
) -> keras.Model:
    """Seeds Keras (every backend's generators), then builds."""
    keras.utils.set_random_seed(seed)
    return build(family, options, num_classes=num_classes, in_channels=in_channels, image_size=image_size)


def count_params(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def predict(rt, model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Through the model's compiled eval-mode forward pass (``tf.function``, ``jax.jit``; torch: eager)."""
    from medbench.frameworks.keras.steps import make_eval

    return np.asarray(make_eval(rt.backend, model)(images), dtype=np.float32)
