"""Flax weights on disk: msgpack (``flax.serialization``) as the own format; torchvision files on import.

msgpack rather than Orbax: one file per model, written and read synchronously with no directory layout or
background threads; these models are small enough that Orbax's sharded, asynchronous checkpointing buys
nothing. The file holds the parameters and batch statistics (``nnx.to_pure_dict``, flattened to keys such
as ``layer1/0/conv1/kernel``) in Flax's own layouts; RNG state is not saved. A PyTorch-format checkpoint
(``.pth``, ``.safetensors``) loads through :mod:`medbench.frameworks.checkpoints` and the converter instead.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization
from flax.traverse_util import flatten_dict

from medbench.frameworks.checkpoints import WeightsError, check_state_dict, read_state_dict
from medbench.frameworks.jax.convert import load_state_dict

SUFFIX = ".msgpack"
_WEIGHTS = nnx.Any(nnx.Param, nnx.BatchStat)


def _flat(tree) -> dict[str, np.ndarray]:
    return {"/".join(map(str, k)): v for k, v in flatten_dict(tree).items()}


def save_weights(model: nnx.Module, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    pure = nnx.to_pure_dict(nnx.state(model, _WEIGHTS))
    path.write_bytes(serialization.msgpack_serialize(_flat(pure)))
    return path


def load_weights(model: nnx.Module, path: str | Path) -> None:
    """Loads a file written by :func:`save_weights`; a PyTorch-format file goes through the converter."""
    path = Path(path)
    if path.suffix != SUFFIX:
        load_state_dict(model, read_state_dict(path), strict=True)
        return
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}.", "Check the path.")
    try:
        saved = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on corrupt input
        raise WeightsError(f"{path} is not a Flax msgpack checkpoint ({err}).") from err
    state = nnx.state(model, _WEIGHTS)
    own = _flat(nnx.to_pure_dict(state))
    check_state_dict({k: tuple(v.shape) for k, v in own.items()}, saved, source=str(path))
    updates = {k: jnp.asarray(saved[k], dtype=own[k].dtype) for k in own}
    for path_, var in nnx.to_flat_state(state):
        var[...] = updates["/".join(map(str, path_))]
