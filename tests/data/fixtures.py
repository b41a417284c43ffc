"""Test helpers: fake MedMNIST npz files in the official layout, and the real files shared beside the repo.

``make_fake_medmnist(tmp_path, "chestmnist", 64)`` writes ``tmp_path/chestmnist_64.npz`` with the right keys,
dtypes, shapes, channels and label format for that dataset; ``override``/``drop`` break it on purpose.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pytest

from medbench.data.registry import SPLITS, Task, get_dataset

# Read-only: copy a file to tmp_path before changing anything.
SHARED_MEDMNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "medmnist"
DEFAULT_N = {"train": 24, "val": 8, "test": 8}


def fake_arrays(
    flag: str,
    size: int = 28,
    n_per_split: Mapping[str, int] | str | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random arrays in the official layout and key order for ``flag`` at ``size``.

    Args:
        flag: a registered dataset; its channels, classes and task decide the shapes and labels.
        size: image side.
        n_per_split: images per split (missing splits get :data:`DEFAULT_N`), or ``"official"`` for the
            registry's split sizes.
        seed: for the random pixels and labels.
    """
    info = get_dataset(flag)
    counts = dict(info.n_samples) if n_per_split == "official" else {**DEFAULT_N, **(n_per_split or {})}
    rng = np.random.default_rng(seed)
    channels = (3,) if info.n_channels == 3 else ()
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        arrays[f"{split}_images"] = rng.integers(
            0, 256, (counts[split], size, size, *channels), dtype=np.uint8
        )
    for split in SPLITS:
        if info.task is Task.MULTI_LABEL:
            labels = rng.integers(0, 2, (counts[split], info.n_classes), dtype=np.uint8)
        else:
            labels = rng.integers(0, info.n_classes, (counts[split], 1), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    return arrays


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, compressed: bool = True) -> Path:
    """Writes ``arrays`` as an npz (deflated like the official files unless ``compressed=False``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def make_fake_medmnist(
    path: str | os.PathLike,
    flag: str,
    size: int = 28,
    n_per_split: Mapping[str, int] | str | None = None,
    seed: int = 0,
    *,
    compressed: bool = True,
    override: Mapping[str, np.ndarray] | None = None,
    drop: Iterable[str] = (),
) -> Path:
    """Writes a fake ``flag`` file and returns its path.

    Args:
        path: a folder (the official file name is used inside it, as under a data root) or a file path.
        flag, size, n_per_split, seed: see :func:`fake_arrays`.
        compressed: deflate the members, as the official files do.
        override: arrays to put in place of (or beside) the generated ones, e.g. wrong dtypes.
        drop: keys to leave out.
    """
    arrays = fake_arrays(flag, size, n_per_split, seed)
    arrays.update(override or {})
    for key in drop:
        arrays.pop(key)
    path = Path(path)
    target = path / get_dataset(flag).filename(size) if path.is_dir() else path
    return write_npz(target, arrays, compressed=compressed)


def shared_file(name: str) -> Path:
    """A real file from the shared MedMNIST folder; skips the test when the folder is not there."""
    path = SHARED_MEDMNIST / name
    if not path.is_file():
        pytest.skip(f"{name} is not in {SHARED_MEDMNIST}")
    return path


def copy_shared(name: str, dest: str | os.PathLike, rename: str | None = None) -> Path:
    """Copies a real shared file into ``dest`` (writable, so tests may damage it)."""
    target = Path(dest) / (rename or name)
    shutil.copyfile(shared_file(name), target)
    return target
