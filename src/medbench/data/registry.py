"""The registry of MedMNIST 2D datasets: tasks, classes, split sizes, licenses, and official files per size.

The facts come from the official MedMNIST v3 metadata (``medmnist/info.py`` of ``medmnist==3.0.2``), kept as
the data file ``medmnist_v3.json`` beside this module so they can be diffed against a new release. Variants
(for example a corrected DermaMNIST) register with :func:`register_dataset` and point at their base dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path

from medbench.errors import InvalidSizeError, UnknownDatasetError, did_you_mean

SIZES: tuple[int, ...] = (28, 64, 128, 224)
SPLITS: tuple[str, ...] = ("train", "val", "test")

# The medmnist package's default, so files a user already downloaded with it are reused.
DEFAULT_ROOT = Path("~/.medmnist")
ROOT_ENV_VAR = "MEDBENCH_DATA_ROOT"


class Task(str, Enum):
    """MedMNIST task types, with the official strings as values."""

    MULTI_CLASS = "multi-class"
    BINARY = "binary-class"
    MULTI_LABEL = "multi-label, binary-class"
    ORDINAL = "ordinal-regression"


@dataclass(frozen=True)
class RemoteFile:
    """Where an official file lives and the MD5 it must have."""

    url: str
    md5: str
    file_name: str | None = None  # when a variant's files do not follow {flag}_{size}.npz


@dataclass(frozen=True)
class DatasetInfo:
    """Everything medbench knows about one dataset."""

    flag: str
    title: str
    task: Task
    labels: tuple[str, ...]
    n_channels: int
    n_samples: dict[str, int]
    license: str
    description: str
    files: dict[int, RemoteFile] = field(repr=False)
    base: str | None = None  # the dataset a variant derives from (e.g. a corrected DermaMNIST)

    @property
    def n_classes(self) -> int:
        """Number of outputs a model needs: classes, or labels for multi-label tasks."""
        return len(self.labels)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.files))

    def filename(self, size: int = 28) -> str:
        """The official file name: ``{flag}.npz`` at 28 px, ``{flag}_{size}.npz`` otherwise."""
        check_size(size, self)
        if self.files[size].file_name:
            return self.files[size].file_name
        return f"{self.flag}.npz" if size == 28 else f"{self.flag}_{size}.npz"

    def remote(self, size: int = 28) -> RemoteFile:
        check_size(size, self)
        return self.files[size]


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Adds a dataset (or a variant of one) to the registry; the flag must be new."""
    if info.flag in _REGISTRY:
        raise ValueError(f"dataset {info.flag!r} is already registered")
    _REGISTRY[info.flag] = info
    return info


def _load(file_name: str) -> None:
    text = resources.files("medbench.data").joinpath(file_name).read_text(encoding="utf-8")
    for flag, d in json.loads(text)["datasets"].items():
        register_dataset(
            DatasetInfo(
                flag=flag,
                title=d["python_class"],
                task=Task(d["task"]),
                labels=tuple(d["labels"]),
                n_channels=d["n_channels"],
                n_samples=dict(d["n_samples"]),
                license=d["license"],
                description=d["description"],
                files={int(s): RemoteFile(**f) for s, f in d["files"].items()},
                base=d.get("base"),
            )
        )


_load("medmnist_v3.json")  # the 12 official 2D datasets
_load("dermamnist_variants.json")  # DermaMNIST-C and -E (Abhishek et al., Sci Data 2025)


def list_datasets() -> list[str]:
    """All registered dataset flags, official ones first in MedMNIST order, then variants."""
    return list(_REGISTRY)


def get_dataset(name: str) -> DatasetInfo:
    """Looks a dataset up by flag (case-insensitive; ``PathMNIST`` and ``pathmnist`` both work)."""
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    raise UnknownDatasetError(
        f"Unknown dataset {name!r}.",
        f"{did_you_mean(key, _REGISTRY)}Run `medbench datasets` to list the {len(_REGISTRY)} known datasets.",
    )


def check_size(size: int, info: DatasetInfo | None = None) -> int:
    """Returns ``size`` if the dataset is published at that size, else raises InvalidSizeError."""
    sizes = info.sizes if info is not None else SIZES
    if size not in sizes:
        raise InvalidSizeError(
            f"Image size {size} is not available" + (f" for {info.flag}." if info else "."),
            f"Choose one of {', '.join(map(str, sizes))}.",
        )
    return size


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the npz files: the argument, else $MEDBENCH_DATA_ROOT, else ~/.medmnist."""
    chosen = root or os.environ.get(ROOT_ENV_VAR) or DEFAULT_ROOT
    return Path(chosen).expanduser()


def local_path(name: str, size: int = 28, root: str | os.PathLike | None = None) -> Path:
    """Where the official file for ``name`` at ``size`` lives (or will live) under the data root."""
    return data_root(root) / get_dataset(name).filename(size)
