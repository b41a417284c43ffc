"""Loading MedMNIST npz files: checked against the registry, with provenance, and lazily when large.

Official files are zip archives written by ``np.savez_compressed``. Their members are deflate-compressed, so
they cannot be memory-mapped where they lie: a member larger than a threshold (512 MiB by default) is
unpacked once, in chunks, into a plain ``.npy`` in medbench's own cache (:func:`medbench.paths.cache_dir`,
``<cache>/<stem>-<sha256[:16]>/<key>.npy``; never beside the data, which may be read-only or the user's)
and memory-mapped from there.
``pathmnist_224.npz`` (about 12 GB) can then be iterated with a few GB of RAM, at the price of its
uncompressed size on disk. Smaller members load straight into memory.

Hashes of each data file are cached in a small sidecar keyed by the file's size and mtime, so a 12 GB file
is hashed once, not on every run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medbench.data.data_file import Source, default_cache_dir, identify, missing_error, split_size_notes
from medbench.data.npz_archive import KEYS, check_labels, check_layout, load_member, open_zip, read_headers
from medbench.data.registry import (
    SPLITS,
    DatasetInfo,
    Task,
    check_size,
    get_dataset,
    local_path,
)

logger = logging.getLogger(__name__)

DEFAULT_MMAP_THRESHOLD = 512 * 2**20  # bytes of one uncompressed member; larger ones are memory-mapped


# ---- what a load returns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One split: uint8 images ``(N, S, S)`` or ``(N, S, S, 3)`` (maybe memory-mapped) and labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_channels(self) -> int:
        return self.images.shape[3] if self.images.ndim == 4 else 1


@dataclass(frozen=True)
class Provenance:
    """Where the data came from and how far it can be trusted; stored with every result.

    Attributes:
        path: the npz file that was read.
        official: the official MedMNIST file (by MD5; or presumed, at the official location with
            ``verify=False``).
        verified: its MD5 was computed and equals the registry's.
        md5, sha256: of the file, when computed (always for a custom file).
        n_samples: images per split.
        note: anything a reader of the results should know, e.g. a subset's split sizes.
        memory_mapped: keys served from the unpacked cache rather than memory.
    """

    path: Path
    official: bool
    verified: bool
    md5: str | None
    sha256: str | None
    n_samples: dict[str, int]
    note: str = ""
    memory_mapped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (paths as strings)."""
        return {
            "path": str(self.path),
            "official": self.official,
            "verified": self.verified,
            "md5": self.md5,
            "sha256": self.sha256,
            "n_samples": dict(self.n_samples),
            "note": self.note,
            "memory_mapped": list(self.memory_mapped),
        }


@dataclass(frozen=True)
class MedMNISTData:
    """A loaded dataset: registry metadata, image size, the three splits and their provenance."""

    info: DatasetInfo
    size: int
    splits: dict[str, Split] = field(repr=False)
    provenance: Provenance

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise KeyError(f"no split {split!r}; the splits are {', '.join(self.splits)}")
        return self.splits[split]

    @property
    def multi_label(self) -> bool:
        return self.info.task is Task.MULTI_LABEL


# ---- the public entry point ---------------------------------------------------------------------------------


def load_dataset(
    name: str,
    size: int = 28,
    *,
    root: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
    verify: bool = True,
    mmap_threshold: int | None = DEFAULT_MMAP_THRESHOLD,
    cache_dir: str | os.PathLike | None = None,
) -> MedMNISTData:
    """Loads and checks a MedMNIST npz file.

    Args:
        name: dataset flag (``pathmnist``); its registry entry gives the expected shapes, classes and sizes.
        size: image side the file must hold.
        root: data root for the official file (default: ``$MEDBENCH_DATA_ROOT`` or ``~/.medmnist``).
        path: a file in the official layout to use instead (a subset, a rebuild, a copy): it is official
            only if its MD5 equals the registry's; its split sizes may differ (recorded in the note).
        verify: check the official file's MD5 against the registry (hashes are cached, see module doc).
            Custom files are always hashed, since their provenance needs the SHA-256.
        mmap_threshold: members larger than this many bytes are unpacked to the cache and memory-mapped;
            None never, 0 always.
        cache_dir: where unpacked members and hash sidecars go (default: :func:`medbench.paths.cache_dir`).

    Raises:
        DataFileMissingError: no file at the path.
        InvalidDataFileError: not a readable zip, or not the MedMNIST layout for this dataset and size.
        ChecksumError: the official file's MD5 differs from the registry's (with ``verify``).
    """
    info = get_dataset(name)
    check_size(size, info)
    src = Source(
        info,
        size,
        Path(path).expanduser() if path is not None else local_path(name, size, root),
        path is not None,
    )
    if not src.path.is_file():
        raise missing_error(src)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(src.path)
    with open_zip(src) as zf:
        members = read_headers(zf, src)
        check_layout(members, src)
        lazy = {k for k, m in members.items() if mmap_threshold is not None and m.file_size > mmap_threshold}
        identity = identify(src, cache, verify=verify, need_hash=src.custom or bool(lazy))
        notes = [*identity.notes, *split_size_notes(members, src, official=identity.official)]
        mmap_dir = cache / f"{src.path.stem}-{identity.sha256[:16]}" if lazy and identity.sha256 else None
        arrays = {key: load_member(zf, members[key], src, mmap_dir if key in lazy else None) for key in KEYS}
    splits = {s: Split(s, arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}
    for split in splits.values():
        check_labels(split, src)
    provenance = Provenance(
        path=src.path,
        official=identity.official,
        verified=identity.verified,
        md5=identity.md5,
        sha256=identity.sha256,
        n_samples={s: len(split) for s, split in splits.items()},
        note="; ".join(notes),
        memory_mapped=tuple(k for k in KEYS if k in lazy),
    )
    return MedMNISTData(info=info, size=size, splits=splits, provenance=provenance)
