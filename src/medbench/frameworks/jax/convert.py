"""PyTorch-named numpy state dicts <-> a Flax NNX module, by attribute path alone.

The naming convention (the table is in ``frameworks/torch/convert.py``): a Flax variable at attribute path
``layer1 / 0 / conv1 / kernel`` is the PyTorch key ``layer1.0.conv1.weight``. Modules mirror PyTorch's
attribute names and use ``nnx.List`` where PyTorch uses ``nn.Sequential``/``nn.ModuleList``, so the module
path *is* the PyTorch path, and only the leaf name and layout change, per kind of layer:

=========================  ====================  =================================================
Flax leaf                  PyTorch leaf          layout change
=========================  ====================  =================================================
``kernel`` (4-d, conv)     ``weight``            (kh, kw, in/groups, out) -> (out, in/groups, kh, kw)
``kernel`` (2-d, linear)   ``weight``            (in, out) -> (out, in)
``bias``                   ``bias``              none
``scale`` (BatchNorm)      ``weight``            none
``mean`` / ``var``         ``running_mean/var``  none
=========================  ====================  =================================================

A depthwise conv is ``nnx.Conv(feature_group_count=C)`` with kernel (kh, kw, 1, C), which the conv rule
maps to PyTorch's (C, 1, kh, kw). RNG state (dropout keys) is not a weight and is skipped; PyTorch's
``num_batches_tracked`` has no Flax counterpart and is ignored on import.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx

from medbench.frameworks.checkpoints import WeightsError, check_state_dict, is_ignored

_LEAVES = {
    "kernel": "weight",
    "bias": "bias",
    "scale": "weight",
    "mean": "running_mean",
    "var": "running_var",
}


def torch_name(path: tuple) -> str:
    """The PyTorch key of the Flax variable at ``path``."""
    *module, leaf = (str(p) for p in path)
    if leaf not in _LEAVES:
        raise WeightsError(f"Flax variable {'/'.join(map(str, path))} has no PyTorch counterpart.")
    return ".".join([*module, _LEAVES[leaf]])


# The layout changes of the table above, by the kernel's number of axes; every other leaf keeps its layout.
_TO_TORCH_AXES = {4: (3, 2, 0, 1), 2: (1, 0)}  # conv (kh, kw, in, out) -> (out, in, kh, kw); linear: .T
_FROM_TORCH_AXES = {4: (2, 3, 1, 0), 2: (1, 0)}  # the inverse permutations


def _kernel_axes(leaf: str, ndim: int, table: Mapping[int, tuple[int, ...]]) -> tuple[int, ...] | None:
    return table.get(ndim) if leaf == "kernel" else None


def to_torch(leaf: str, value: np.ndarray) -> np.ndarray:
    axes = _kernel_axes(leaf, value.ndim, _TO_TORCH_AXES)
    return value if axes is None else value.transpose(axes)


def torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    axes = _kernel_axes(leaf, len(shape), _TO_TORCH_AXES)
    return tuple(shape) if axes is None else tuple(shape[a] for a in axes)


def from_torch(leaf: str, value: np.ndarray) -> np.ndarray:
    axes = _kernel_axes(leaf, value.ndim, _FROM_TORCH_AXES)
    return value if axes is None else value.transpose(axes)


def _weights(model: nnx.Module) -> dict[str, tuple[str, nnx.Variable]]:
    """PyTorch key -> (Flax leaf name, variable) for every parameter and batch statistic."""
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    return {torch_name(path): (str(path[-1]), var) for path, var in nnx.to_flat_state(state)}


def state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    """The model's weights as PyTorch-named, PyTorch-layout numpy arrays."""
    return {
        key: np.ascontiguousarray(to_torch(leaf, np.asarray(var[...], dtype=np.float32)))
        for key, (leaf, var) in _weights(model).items()
    }


def load_state_dict(model: nnx.Module, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
    """Copies PyTorch-named arrays into ``model``; :class:`WeightsError` on any mismatch (before any copy)."""
    own = _weights(model)
    expected = {key: torch_shape(leaf, var[...].shape) for key, (leaf, var) in own.items()}
    check_state_dict(expected, state, strict=strict)
    for key, value in state.items():
        if key in own and not is_ignored(key):
            leaf, var = own[key]
            var[...] = jnp.asarray(from_torch(leaf, np.asarray(value)), dtype=var[...].dtype)
