"""PyTorch-named checkpoints as numpy: reading them safely and checking them against a model.

Every back-end names its parameters by the PyTorch ``state_dict`` key of the equivalent torchvision module
(see ``frameworks/<fw>/convert.py``), so one checkpoint format travels between all three: a dict of
PyTorch-layout arrays. This module reads such a dict from ``.safetensors`` (``safetensors.numpy``) or from a
``.pth``/``.pt`` zip written by ``torch.save`` *without importing torch*: a restricted unpickler accepts only
tensors, their storages and ``OrderedDict`` (what ``torch.load(weights_only=True)`` accepts for a state
dict) and refuses every other global, so a checkpoint can never run code. Numpy only.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import MedbenchError

# Buffers PyTorch keeps that no other framework has; never required, never compared.
IGNORED_SUFFIXES = (".num_batches_tracked",)
_SHOW = 5  # how many offending names an error message lists


class WeightsError(MedbenchError, ValueError):
    """A checkpoint that does not fit the model, or that cannot be read safely."""


def is_ignored(key: str) -> bool:
    return key.endswith(IGNORED_SUFFIXES)


def _first(names: Iterable[str]) -> str:
    names = sorted(names)
    more = f" (and {len(names) - _SHOW} more)" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]],
    given: Mapping[str, Any],
    *,
    strict: bool = True,
    source: str = "the state dict",
) -> None:
    """Raises :class:`WeightsError` when ``given`` does not fit ``expected`` (name -> PyTorch shape).

    Shape mismatches always fail; missing and unexpected names fail when ``strict``. The message lists the
    first few names of each kind, so a user sees at once whether the wrong model or wrong size was loaded.
    """
    expected = {k: tuple(v) for k, v in expected.items() if not is_ignored(k)}
    present = {k: tuple(np.shape(v)) for k, v in given.items() if not is_ignored(k)}
    missing = [k for k in expected if k not in present]
    unexpected = [k for k in present if k not in expected]
    wrong = [
        f"{k}: {present[k]} != {expected[k]}" for k in expected if k in present and present[k] != expected[k]
    ]
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) [checkpoint != model]: {_first(wrong)}")
    if strict and missing:
        problems.append(f"{len(missing)} missing name(s): {_first(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected name(s): {_first(unexpected)}")
    if problems:
        raise WeightsError(
            f"{source} does not fit the model: " + "; ".join(problems) + ".",
            "Check the model name, num_classes, in_channels and small_input the weights were made with.",
        )


# ---- reading ---------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch-named state dict as numpy arrays from ``.safetensors`` or a ``torch.save`` zip (``.pth``).

    Raises:
        WeightsError: the file is missing, of an unknown kind, or holds anything but tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}.", "Check the path.")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    if zipfile.is_zipfile(path):
        return _read_torch_zip(path)
    raise WeightsError(
        f"{path} is neither a .safetensors file nor a torch.save zip archive.",
        "Re-save it with safetensors (or torch.save from PyTorch >= 1.6).",
    )


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",  # numpy has no bfloat16: widened to float32 below
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    itemsize = storage.dtype.itemsize
    flat = storage[offset:]
    if not size:
        return flat[:1].reshape(()).copy()
    return np.lib.stride_tricks.as_strided(flat, tuple(size), tuple(s * itemsize for s in stride)).copy()


class _SafeUnpickler(pickle.Unpickler):
    """Builds numpy arrays from a ``torch.save`` pickle; refuses every global a state dict does not need."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(file)
        self._archive, self._prefix, self._source = archive, prefix, source

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise WeightsError(
            f"{self._source} holds a pickled {module}.{name}, which is not a tensor; refusing to load it.",
            "Only plain state dicts of tensors are accepted (as torch.load(weights_only=True)).",
        )

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise WeightsError(f"{self._source} holds an unknown storage record {kind!r}.")
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        if storage_type.dtype == "bfloat16":
            bits = np.frombuffer(raw, dtype="<u2", count=numel).astype(np.uint32) << 16
            return bits.view(np.float32)
        return np.frombuffer(raw, dtype=np.dtype(storage_type.dtype).newbyteorder("<"), count=numel)


def _read_torch_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise WeightsError(f"{path} is a zip but not a torch.save archive (no single data.pkl).")
        prefix = pickles[0][: -len("/data.pkl")]
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise WeightsError(f"{path} was written on a big-endian machine; re-save it as safetensors.")
        with archive.open(pickles[0]) as file:
            obj = _SafeUnpickler(file, archive, prefix, path).load()
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()
    ):
        raise WeightsError(f"{path} does not hold a flat state dict of name -> tensor.")
    return dict(obj)


def load_torchvision_checkpoint(framework: Any, model: Any, path: str | Path, *, strict: bool = True) -> None:
    """Loads a torchvision-format checkpoint (``.pth`` or ``.safetensors``) into any back-end's ``model``.

    Args:
        framework: a :class:`medbench.frameworks.base.Backend` (e.g. ``get_framework("jax")``).
        model: a model that framework built.
        path: the checkpoint; read with :func:`read_state_dict`, so no code in it can run.
        strict: fail on missing or unexpected names (shape mismatches always fail).
    """
    framework.load_state_dict(model, read_state_dict(path), strict=strict)
