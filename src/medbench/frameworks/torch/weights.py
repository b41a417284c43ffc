"""PyTorch weights on disk: safetensors as the own format, torchvision ``.pth`` state dicts on import.

safetensors rather than ``torch.save``: it holds nothing but named tensors, so loading can never run code,
and every framework can read it (``safetensors.numpy``). ``.pth``/``.pt`` files are read with
``torch.load(weights_only=True)``, which refuses pickled objects that are not tensors.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medbench.frameworks.checkpoints import WeightsError, read_state_dict
from medbench.frameworks.torch.convert import load_state_dict, state_dict

SUFFIX = ".safetensors"


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Writes the model's state dict to ``path`` (``.safetensors`` appended when missing)."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state_dict(model), str(path))
    return path


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch-named state dict from ``.safetensors`` or a ``.pth``/``.pt`` file, as numpy arrays."""
    path = Path(path)
    if path.suffix == SUFFIX or not path.is_file():
        return read_state_dict(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(
            f"{path} is not a plain state dict of tensors; refusing to unpickle it ({reason}).",
            "Only weights_only checkpoints are loaded; re-save the state dict (or use safetensors).",
        ) from err
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a flat state dict of name -> tensor.")
    return {k: v.numpy() for k, v in obj.items()}


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Loads weights saved by :func:`save_weights` (or a torchvision ``.pth``), checking names and shapes."""
    load_state_dict(model, read_checkpoint(path), strict=True)
