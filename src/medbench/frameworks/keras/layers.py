"""Keras 3 building blocks that compute exactly what their PyTorch counterparts compute.

Only ``keras.layers`` and ``keras.ops`` are used (no ``tf.*``), so the same models run on Keras' JAX and
torch backends. Functional helpers take a tensor and a *name*, which is the PyTorch module path of the
layer (``layer1.0.conv1``): that is the naming convention ``convert.py`` relies on. Helper layers without
weights (padding, activations) get names derived from it (``layer1.0.conv1.pad``). The Keras layer itself is
named :func:`layer_name` of that path (``layer1__0__conv1``), because Keras' torch backend registers each
variable as a ``torch.nn.Parameter`` under its path and torch refuses names containing ``"."``;
:func:`torch_path` turns a layer name back into the PyTorch path.

* Stride-1 convolutions with odd kernels use ``padding="same"``, which is symmetric there; strided ones get
  an explicit ``ZeroPadding2D(k // 2)`` and ``"valid"``, because TF/XLA "same" pads the bottom/right only
  when the stride is 2 and the output would shift by a pixel against PyTorch.
* :class:`BatchNorm` follows ``torch.nn.BatchNorm2d`` (unbiased variance in the running average).
* Initialisation is torchvision's (see ``frameworks/torch/layers.py``): ``VarianceScaling(2, fan_out,
  untruncated_normal)`` for convs, ``VarianceScaling(1/3, fan_in, uniform)`` and ``U(+-1/sqrt(fan_in))`` for
  Linear weight and bias. Careful with ``DepthwiseConv2D``: its kernel is (kh, kw, C, 1), so Keras'
  fan_out is kh*kw where PyTorch's (C, 1, kh, kw) gives C*kh*kw; use ``VarianceScaling(2 / C, "fan_out",
  ...)`` there to get PyTorch's ``kaiming_normal_(fan_out)``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers, ops

from medbench.frameworks.families import HeadConfig
from medbench.frameworks.noise import current_mask

SEPARATOR = "__"  # no PyTorch module path contains it, so the mapping is reversible

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # Keras' convention: new = m * old + (1 - m) * batch; PyTorch says 0.1


def layer_name(path: str) -> str:
    """The Keras layer name for a PyTorch module path: ``layer1.0.conv1`` -> ``layer1__0__conv1``."""
    return path.replace(".", SEPARATOR)


def torch_path(name: str) -> str:
    """The PyTorch module path of a Keras layer named by :func:`layer_name`."""
    return name.replace(SEPARATOR, ".")


def conv_init():
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def linear_init():
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def uniform_bias_init(fan_in: int):
    bound = 1.0 / fan_in**0.5
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="medbench")
class BatchNorm(layers.BatchNormalization):
    """``BatchNormalization`` with PyTorch's running variance (unbiased, ``n / (n - 1)``).

    Keras (like Flax) stores the *biased* batch variance in ``moving_variance``; PyTorch stores the unbiased
    one, and after training the eval-mode outputs would differ. Same weights, names and config as the
    parent; statistics in float32 under mixed precision, as the parent does. No masks, no renorm.
    """

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, "float32")
        axes = [i for i in range(len(x.shape)) if i != len(x.shape) - 1]
        if training and self.trainable:
            mean = ops.mean(x, axis=axes)
            var = ops.mean(ops.square(x - mean), axis=axes)
            n = ops.cast(ops.prod(ops.shape(x)[:-1]), "float32")
            unbiased = var * n / ops.maximum(n - 1.0, 1.0)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + ops.stop_gradient(mean) * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + ops.stop_gradient(unbiased) * (1.0 - m))
        else:
            mean, var = self.moving_mean, self.moving_variance
        # alpha/beta form, as PyTorch's CPU kernel: y = x * alpha + beta
        alpha = self.gamma * ops.rsqrt(var + self.epsilon)
        beta = self.beta - mean * alpha
        return ops.cast(x * alpha + beta, self.compute_dtype)


@keras.saving.register_keras_serializable(package="medbench")
class Dropout(layers.Dropout):
    """``layers.Dropout`` that takes its mask from the training step when one is handed over (shared noise).

    The site name is the layer's PyTorch path (:func:`torch_path` of its name). Without a handed-over mask
    (native noise, inference) this is Keras' own Dropout; with ``noise_shape=(None, 1, 1, 1)`` it is
    stochastic depth and the mask is ``(batch, 1, 1, 1)``. ``keras.ops`` only, so it runs on every backend.
    See :mod:`medbench.frameworks.noise`.
    """

    def call(self, inputs, training=False):
        mask = current_mask(torch_path(self.name)) if training and self.rate > 0 else None
        if mask is None:
            return super().call(inputs, training=training)
        return inputs * ops.cast(mask, inputs.dtype)


def tag_noise_sites(model: keras.Model) -> dict[str, float]:
    """PyTorch path -> rate of every Dropout layer with rate > 0 (each knows its path from its name)."""
    found, stack = {}, [model]
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif isinstance(layer, layers.Dropout) and layer.rate > 0:
                found[torch_path(layer.name)] = float(layer.rate)
    return found


def batch_norm(x, name: str, *, zero_init: bool = False):
    return BatchNorm(
        axis=-1,
        momentum=BN_MOMENTUM,
        epsilon=BN_EPS,
        gamma_initializer="zeros" if zero_init else "ones",
        name=layer_name(name),
    )(x)


def conv2d(
    x, filters: int, kernel_size: int, name: str, *, stride: int = 1, groups: int = 1, bias: bool = False
):
    """A convolution padded as PyTorch's ``padding=kernel_size // 2``."""
    pad = kernel_size // 2
    same = stride == 1 and kernel_size % 2 == 1  # only then is Keras' "same" symmetric, as PyTorch's padding
    if pad and not same:
        x = layers.ZeroPadding2D(pad, name=layer_name(f"{name}.pad"))(x)
    padding = "same" if pad and same else "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        groups=groups,
        use_bias=bias,
        kernel_initializer=conv_init(),
        bias_initializer="zeros",
        name=layer_name(name),
    )(x)


def linear(x, units: int, name: str, *, bias: bool = True):
    fan_in = x.shape[-1]
    return layers.Dense(
        units,
        use_bias=bias,
        kernel_initializer=linear_init(),
        bias_initializer=uniform_bias_init(fan_in),
        name=layer_name(name),
    )(x)


def relu(x, name: str):
    return layers.ReLU(name=layer_name(name))(x)


def max_pool(x, kernel_size: int, stride: int, name: str, *, padding: int = 0):
    """Max-pooling; zero padding equals PyTorch's -inf padding only after a ReLU (inputs >= 0)."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=layer_name(f"{name}.pad"))(x)
    return layers.MaxPooling2D(kernel_size, strides=stride, padding="valid", name=layer_name(name))(x)


def conv_bn_relu(x, filters: int, name: str, *, kernel_size: int = 3, stride: int = 1):
    """conv - BatchNorm - ReLU as ``{name}.conv``, ``{name}.bn``."""
    x = conv2d(x, filters, kernel_size, f"{name}.conv", stride=stride)
    return relu(batch_norm(x, f"{name}.bn"), f"{name}.relu")


def mlp_head(x, cfg: HeadConfig, num_classes: int, name: str, *, dense: Callable = linear):
    """The ``mlp`` head of :class:`~medbench.frameworks.families.HeadConfig`, named as PyTorch's Sequential.

    ``{name}.0`` Dropout, ``{name}.1`` Linear to ``cfg.hidden``, ``{name}.2`` ReLU, ``{name}.3`` Linear to the
    classes. ``dense(x, units, name)`` builds each Linear with the family's own head initialisation
    (:func:`linear`, PyTorch's default, for ResNet).
    """
    x = Dropout(cfg.dropout, name=layer_name(f"{name}.0"))(x)
    x = relu(dense(x, cfg.hidden, f"{name}.1"), f"{name}.2")
    return dense(x, num_classes, f"{name}.3")


def float32_logits(x):
    """Logits in float32 under a mixed-precision policy (Keras' recommended final cast)."""
    return layers.Activation("linear", dtype="float32", name="logits")(x)
