"""Flax NNX model families and the dispatch from a registered name to a module.

Attribute paths mirror PyTorch's dotted names (``self.layer1[0].conv1`` holds ``layer1.0.conv1.kernel``), so
``convert.py`` maps names by path alone. Models are returned in training mode, as PyTorch's are;
``nnx.view(model, use_running_average=True, deterministic=True)`` gives the evaluation view.

EfficientNetV2 lives in ``efficientnet.py`` beside this file and is imported only when asked for. The
builder this dispatch calls is::

    build_efficientnetv2(*, num_classes: int, in_channels: int, image_size: int, dtype, rngs: nnx.Rngs,
                         **options) -> nnx.Module

``dtype`` is the compute dtype (None = float32; parameters stay float32), ``options`` the registry's plus user
overrides. The module's ``__call__(x)`` takes NHWC and returns float32 logits.

Both ResNet and EfficientNetV2 offer ``head="mlp"`` (:func:`~medbench.frameworks.jax.layers.mlp_head`):
``fc.0``..``fc.3`` or ``classifier.0``..``classifier.3`` in torch's layout, its Linear layers initialised as
the family's own.
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from medbench.errors import ConfigError
from medbench.frameworks.families import ResNetConfig, SimpleCNNConfig
from medbench.frameworks.jax.layers import (
    ConvBNReLU,
    Dropout,
    batch_norm,
    conv2d,
    linear,
    max_pool,
    mlp_head,
)


# ---- containers and the classifier head shared by the families ----------------------------------------------
# ---- SimpleCNN ---------------------------------------------------------------------------------------------
class SimpleCNN(nnx.Module):
    def __init__(
        self, cfg: SimpleCNNConfig, *, num_classes: int, in_channels: int, dtype: Any, rngs: nnx.Rngs
    ):
        blocks, channels = [], in_channels
        for width in cfg.widths:
            convs = [
                ConvBNReLU(channels if j == 0 else width, width, dtype=dtype, rngs=rngs)
                for j in range(cfg.convs_per_block)
            ]
            blocks.append(nnx.List(convs))
            channels = width
        self.blocks = nnx.List(blocks)
        self.fc1 = linear(channels, cfg.hidden, dtype=dtype, rngs=rngs)
        self.dropout = Dropout(cfg.dropout, rngs=rngs)
        self.fc2 = linear(cfg.hidden, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        for block in self.blocks:
            for unit in block:
                x = unit(x)
            x = max_pool(x, 2, 2)
        x = jnp.mean(x, axis=(1, 2))
        x = self.fc2(self.dropout(nnx.relu(self.fc1(x))))
        return x.astype(jnp.float32)


# ---- ResNet (torchvision v1.5 layout) ----------------------------------------------------------------------
class Downsample(nnx.List):
    """``downsample.0`` (1x1 conv) and ``downsample.1`` (BatchNorm), as torchvision's ``nn.Sequential``."""

    def __call__(self, x):
        return self[1](self[0](x))


class BasicBlock(nnx.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, *, zero_init=False, dtype=None, rngs):
        self.conv1 = conv2d(inplanes, planes, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv2 = conv2d(planes, planes, 3, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm(planes, zero_init=zero_init, dtype=dtype, rngs=rngs)
        self.downsample = downsample

    def __call__(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return nnx.relu(out + identity)


class Bottleneck(nnx.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, *, zero_init=False, dtype=None, rngs):
        self.conv1 = conv2d(inplanes, planes, 1, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv2 = conv2d(planes, planes, 3, stride=stride, dtype=dtype, rngs=rngs)  # v1.5
        self.bn2 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv3 = conv2d(planes, planes * 4, 1, dtype=dtype, rngs=rngs)
        self.bn3 = batch_norm(planes * 4, zero_init=zero_init, dtype=dtype, rngs=rngs)
        self.downsample = downsample

    def __call__(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = nnx.relu(self.bn1(self.conv1(x)))
        out = nnx.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return nnx.relu(out + identity)


class ResNet(nnx.Module):
    def __init__(self, cfg: ResNetConfig, *, num_classes: int, in_channels: int, dtype: Any, rngs: nnx.Rngs):
        block = Bottleneck if cfg.block == "bottleneck" else BasicBlock
        self.small_input = cfg.small_input
        if cfg.small_input:
            self.conv1 = conv2d(in_channels, 64, 3, dtype=dtype, rngs=rngs)
        else:
            self.conv1 = conv2d(in_channels, 64, 7, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(64, dtype=dtype, rngs=rngs)
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate(cfg.stages(), start=1):
            layers = []
            for b in range(blocks):
                s = stride if b == 0 else 1
                downsample = None
                if b == 0 and (stride != 1 or inplanes != planes * block.expansion):
                    downsample = Downsample(
                        [
                            conv2d(inplanes, planes * block.expansion, 1, stride=s, dtype=dtype, rngs=rngs),
                            batch_norm(planes * block.expansion, dtype=dtype, rngs=rngs),
                        ]
                    )
                layers.append(
                    block(
                        inplanes,
                        planes,
                        s,
                        downsample,
                        zero_init=cfg.zero_init_residual,
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                inplanes = planes * block.expansion
            setattr(self, f"layer{i}", nnx.List(layers))
        make_linear = partial(linear, dtype=dtype, rngs=rngs)  # nn.Linear's default initialisation
        if cfg.head == "mlp":
            self.fc = mlp_head(inplanes, num_classes, cfg.head_config, make_linear=make_linear, rngs=rngs)
        else:
            self.fc = make_linear(inplanes, num_classes)

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x)))
        if not self.small_input:
            x = max_pool(x, 3, 2, padding=1)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for blk in layer:
                x = blk(x)
        return self.fc(jnp.mean(x, axis=(1, 2))).astype(jnp.float32)


# ---- dispatch ----------------------------------------------------------------------------------------------
def build(
    family: str,
    options: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dtype: Any = None,
    rngs: nnx.Rngs,
) -> nnx.Module:
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, dtype=dtype, rngs=rngs)
    if family == "simple_cnn":
        return SimpleCNN(SimpleCNNConfig.from_options(options, image_size), **kwargs)
    if family == "resnet":
        return ResNet(ResNetConfig.from_options(options, image_size), **kwargs)
    if family == "efficientnetv2":
        from medbench.frameworks.jax import efficientnet

        return efficientnet.build_efficientnetv2(image_size=image_size, **kwargs, **options)
    raise ConfigError(f"The jax back-end has no model family {family!r}.")


# ---- the back-end contract (medbench.frameworks.base.ModelsModule) -----------------------------------------
# id(model) -> (a weak reference to it, the variables its forward pass reads, the jitted forward pass)
_FORWARDS: dict[int, tuple[weakref.ref, list, Any]] = {}


def build_model(
    rt,
    family: str,
    options: dict[str, Any],
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    seed: int,
) -> nnx.Module:
    """Builds with parameter and dropout streams drawn from ``seed``, then tags the noise layers."""
    from medbench.frameworks.jax.layers import tag_noise_sites

    model = build(
        family,
        options,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        dtype=rt.dtype,
        rngs=nnx.Rngs(params=seed, dropout=seed + 1),
    )
    tag_noise_sites(model)
    return model


def count_params(model: nnx.Module) -> int:
    return sum(int(np.prod(v[...].shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def _forward(model: nnx.Module):
    """The jitted eval-mode forward pass of ``model`` and the variables it reads, built once per model.

    Splitting a module walks its whole graph (about 0.1 s for ResNet-50), too slow for every call. The
    eval view shares the model's ``Variable`` objects, and loading or training assigns into those same
    objects, so reading their current values per call is enough to see new weights.
    """
    import jax

    from medbench.frameworks.jax.train import mode_view

    entry = _FORWARDS.get(id(model))
    if entry is not None and entry[0]() is model:
        return entry[1], entry[2]
    graphdef, state = nnx.split(mode_view(model, train=False))
    variables = jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))
    treedef = jax.tree.structure(nnx.as_pure(state))

    def forward(values, x):
        return nnx.merge(graphdef, jax.tree.unflatten(treedef, values))(x)

    fn = jax.jit(forward)
    _FORWARDS[id(model)] = (weakref.ref(model), variables, fn)
    return variables, fn


def predict(rt, model: nnx.Module, images: np.ndarray) -> np.ndarray:
    variables, fn = _forward(model)
    return np.asarray(rt.keep(fn([v.get_value() for v in variables], images)))
