"""PyTorch-named numpy state dicts <-> a Keras 3 model, by layer name and layer kind.

The naming convention (the table is in ``frameworks/torch/convert.py``): a Keras layer is *named* by its
PyTorch module path (``layer1.0.conv1``, spelt ``layer1__0__conv1``: see ``layers.layer_name``), and each
of its variables maps to one PyTorch key by the layer's kind. Layers inside nested models are found too;
their names must already be full PyTorch paths.

==========================  =================================  ==========================================
Keras layer / variable      PyTorch key                        layout change
==========================  =================================  ==========================================
Conv2D ``kernel``           ``<name>.weight``                  (kh, kw, in/groups, out) -> (out, in/g, kh, kw)
DepthwiseConv2D ``kernel``  ``<name>.weight``                  (kh, kw, C, M) -> (C*M, 1, kh, kw)
Dense ``kernel``            ``<name>.weight``                  (in, out) -> (out, in)
any ``bias``                ``<name>.bias``                    none
BatchNormalization          ``.weight .bias .running_mean      gamma, beta, moving_mean, moving_variance
                            .running_var``
LayerNormalization          ``.weight .bias``                  gamma, beta
==========================  =================================  ==========================================

Other layer kinds with weights are added to ``LAYER_KINDS``; an unknown one is an error,
never silently skipped. PyTorch's ``num_batches_tracked`` has no Keras counterpart and is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import keras
import numpy as np

from medbench.frameworks.checkpoints import WeightsError, check_state_dict, is_ignored
from medbench.frameworks.keras.layers import torch_path

Layout = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]  # (to, from) torch

SAME: Layout = (lambda a: a, lambda a: a)
CONV: Layout = (lambda a: a.transpose(3, 2, 0, 1), lambda a: a.transpose(2, 3, 1, 0))
DENSE: Layout = (lambda a: a.T, lambda a: a.T)


def _depthwise_to(a: np.ndarray) -> np.ndarray:
    kh, kw, c, m = a.shape  # PyTorch's output channel c*M + m is Keras' [.., c, m]
    return a.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


def _depthwise_from_shape(shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    kh, kw, c, m = shape
    return lambda a: a[:, 0].transpose(1, 2, 0).reshape(kh, kw, c, m)


# layer class -> {variable name: (PyTorch leaf, layout)}; the first isinstance match wins
LAYER_KINDS: list[tuple[type, dict[str, tuple[str, Layout | None]]]] = [
    (keras.layers.DepthwiseConv2D, {"kernel": ("weight", None), "bias": ("bias", SAME)}),
    (keras.layers.Conv2D, {"kernel": ("weight", CONV), "bias": ("bias", SAME)}),
    (keras.layers.Dense, {"kernel": ("weight", DENSE), "bias": ("bias", SAME)}),
    (
        keras.layers.BatchNormalization,
        {
            "gamma": ("weight", SAME),
            "beta": ("bias", SAME),
            "moving_mean": ("running_mean", SAME),
            "moving_variance": ("running_var", SAME),
        },
    ),
    (keras.layers.LayerNormalization, {"gamma": ("weight", SAME), "beta": ("bias", SAME)}),
]


def _leaf_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        elif layer.weights:
            yield layer


def _layout(layer, variable) -> tuple[str, Layout]:
    for cls, table in LAYER_KINDS:
        if isinstance(layer, cls):
            if variable.name not in table:
                break
            leaf, layout = table[variable.name]
            if layout is None:  # depthwise: the inverse needs the Keras shape
                layout = (_depthwise_to, _depthwise_from_shape(tuple(variable.shape)))
            return leaf, layout
    raise WeightsError(
        f"Keras layer {layer.name!r} ({type(layer).__name__}) has a variable {variable.name!r} "
        "with no PyTorch counterpart.",
        "Add the layer kind to LAYER_KINDS in medbench/frameworks/keras/convert.py.",
    )


def weights_by_torch_name(model: keras.Model) -> dict[str, tuple[keras.Variable, Layout]]:
    """PyTorch key -> (Keras variable, layout) for every weight of ``model``."""
    out: dict[str, tuple[keras.Variable, Layout]] = {}
    for layer in _leaf_layers(model):
        for variable in layer.weights:
            leaf, layout = _layout(layer, variable)
            key = f"{torch_path(layer.name)}.{leaf}"
            if key in out:
                raise WeightsError(
                    f"Two Keras variables map to the PyTorch key {key!r}; layer names must be unique."
                )
            out[key] = (variable, layout)
    return out


def state_dict(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's weights as PyTorch-named, PyTorch-layout numpy arrays."""
    return {
        key: np.ascontiguousarray(layout[0](np.asarray(keras.ops.convert_to_numpy(var), dtype=np.float32)))
        for key, (var, layout) in weights_by_torch_name(model).items()
    }


def load_state_dict(model: keras.Model, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
    """Copies PyTorch-named arrays into ``model``; :class:`WeightsError` on any mismatch (before any copy)."""
    own = weights_by_torch_name(model)
    expected = {key: layout[0](np.empty(var.shape, np.bool_)).shape for key, (var, layout) in own.items()}
    check_state_dict(expected, state, strict=strict)
    for key, value in state.items():
        if key in own and not is_ignored(key):
            var, layout = own[key]
            var.assign(layout[1](np.asarray(value, dtype=np.float32)).astype(var.dtype))
