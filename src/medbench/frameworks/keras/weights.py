"""Keras weights on disk: ``.weights.h5`` (``model.save_weights``) as the own format; torchvision
checkpoints (``.pth``, ``.safetensors``) load through :mod:`medbench.frameworks.checkpoints` and ``convert``.

Keras matches ``.weights.h5`` entries to layers by position, not by name, and on a mismatch either fails
with a message about internal paths or loads into the wrong layer. :func:`load_weights` therefore checks the
file first: every weighted layer's name (stored as an attribute) and variable shapes must match the model.
"""

from __future__ import annotations

from pathlib import Path

import keras

from medbench.frameworks.checkpoints import WeightsError, check_state_dict, read_state_dict
from medbench.frameworks.keras.convert import load_state_dict

SUFFIX = ".weights.h5"


def save_weights(model: keras.Model, path: str | Path) -> Path:
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        path = path.with_name(path.name + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path))
    return path


def _file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """``layer name/variable index`` -> shape, for every variable stored in a ``.weights.h5`` file."""
    import h5py

    shapes: dict[str, tuple[int, ...]] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and name.endswith("vars") and "name" in obj.attrs:
            for index, dataset in obj.items():
                shapes[f"{obj.attrs['name']}/{index}"] = tuple(dataset.shape)

    try:
        with h5py.File(path, "r") as file:
            file.visititems(visit)
    except OSError as err:
        raise WeightsError(f"{path} is not a Keras .weights.h5 file ({err}).") from err
    return shapes


def _model_shapes(model: keras.Model) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            shapes.update(_model_shapes(layer))
        else:
            shapes.update({f"{layer.name}/{i}": tuple(v.shape) for i, v in enumerate(layer.weights)})
    return shapes


def load_weights(model: keras.Model, path: str | Path) -> None:
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        load_state_dict(model, read_state_dict(path), strict=True)
        return
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}.", "Check the path.")
    stored = {k: _Shape(v) for k, v in _file_shapes(path).items()}
    check_state_dict(_model_shapes(model), stored, source=str(path))
    model.load_weights(str(path))


class _Shape:
    """Stands in for an array in :func:`check_state_dict`, which only reads ``np.shape``."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape
