"""Reading an npz archive member by member: headers first, layout and shapes checked before any data, large
members unpacked once into the cache in chunks and memory-mapped."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medbench.data.data_file import Source, corrupt_error
from medbench.data.registry import (
    SPLITS,
    Task,
)
from medbench.errors import InvalidDataFileError, MedbenchError
from medbench.paths import CACHE_ENV_VAR

if TYPE_CHECKING:
    from medbench.data.loading import Split

logger = logging.getLogger(__name__)
KEYS: tuple[str, ...] = tuple(f"{split}_{kind}" for kind in ("images", "labels") for split in SPLITS)
_COPY_CHUNK = 16 * 2**20  # peak extra RAM while unpacking a member


@dataclass(frozen=True)
class Member:
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    file_size: int  # uncompressed bytes, header included


@contextlib.contextmanager
def reading(src: Source, key: str | None = None) -> Iterator[None]:
    """Turns the ways a damaged zip fails (bad CRC, truncated deflate stream) into one clear error."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise corrupt_error(src, err, key) from err


@contextlib.contextmanager
def open_zip(src: Source) -> Iterator[zipfile.ZipFile]:
    with reading(src):
        zf = zipfile.ZipFile(src.path)
    with zf:
        yield zf


def read_headers(zf: zipfile.ZipFile, src: Source) -> dict[str, Member]:
    """Shape and dtype of every member from its .npy header, without reading the data."""
    names = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
    missing = [k for k in KEYS if k not in names]
    if missing:
        raise InvalidDataFileError(
            f"{src.path} is missing {', '.join(missing)} (it has {', '.join(sorted(names)) or 'no arrays'}).",
            src.layout_fix(),
        )
    members = {}
    for key in KEYS:
        with reading(src, key), zf.open(names[key]) as f:
            try:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read(f)
            except ValueError as err:
                raise InvalidDataFileError(
                    f"{src.path}: {key} is not a numpy array ({err}).", src.layout_fix()
                ) from err
        members[key] = Member(key, tuple(shape), np.dtype(dtype), fortran, names[key].file_size)
    return members


def check_layout(members: Mapping[str, Member], src: Source) -> None:
    """Dtypes, shapes and lengths from the headers alone, so a wrong file fails before any data is read."""
    for split in SPLITS:
        images, labels = members[f"{split}_images"], members[f"{split}_labels"]
        if images.dtype != np.uint8:
            raise InvalidDataFileError(
                f"{src.path}: {images.key} has dtype {images.dtype}, expected uint8 (pixel values 0-255).",
                src.layout_fix(),
            )
        check_image_shape(images, src)
        check_label_header(labels, src)
        if images.shape[0] != labels.shape[0]:
            raise InvalidDataFileError(
                f"{src.path}: {images.key} has {images.shape[0]} images "
                f"but {labels.key} has {labels.shape[0]} labels.",
                src.layout_fix(),
            )


def check_image_shape(member: Member, src: Source) -> None:
    rgb = src.info.n_channels == 3
    shape = member.shape
    expected_ndim = 4 if rgb else 3
    ok = len(shape) == expected_ndim and shape[1:3] == (src.size, src.size) and (not rgb or shape[3] == 3)
    if ok:
        return
    hint = ""
    if len(shape) in (3, 4) and shape[1] == shape[2] and shape[1] != src.size:
        from medbench.data.registry import SIZES

        if shape[1] in src.info.sizes:
            hint = f" It holds {shape[1]} px images: load it with size={shape[1]} (--size {shape[1]})."
        else:  # a size MedMNIST does not publish would only be refused in turn
            hint = (
                f" It holds {shape[1]} px images, and medbench reads files at the published sizes "
                f"({', '.join(map(str, src.info.sizes or SIZES))}) only: resize the images to one of them "
                "when writing the file (--resize-to then upsamples for the model)."
            )
    elif len(shape) != expected_ndim:
        kind = (
            "RGB, so images need a trailing axis of 3" if rgb else "greyscale, so images have no channel axis"
        )
        hint = f" {src.info.flag} is {kind}."
    raise InvalidDataFileError(
        f"{src.path}: {member.key} has shape {shape}; "
        f"{src.info.flag} at {src.size} px needs {src.image_shape()}.{hint}",
        src.layout_fix(),
    )


def check_label_header(member: Member, src: Source) -> None:
    multi = src.info.task is Task.MULTI_LABEL
    width = src.info.n_classes if multi else 1
    if member.dtype.kind not in "iub":
        raise InvalidDataFileError(
            f"{src.path}: {member.key} has dtype {member.dtype}; labels must be integers (class indices"
            + (" or 0/1 flags)." if multi else ")."),
            src.layout_fix(),
        )
    if len(member.shape) != 2 or member.shape[1] != width:
        reshape = " (for a flat array, labels.reshape(-1, 1))" if len(member.shape) == 1 and not multi else ""
        raise InvalidDataFileError(
            f"{src.path}: {member.key} has shape {member.shape}; "
            f"{src.info.flag} needs (N, {width}){reshape}.",
            src.layout_fix(),
        )


def check_labels(split: Split, src: Source) -> None:
    """Label values: class indices in [0, n_classes), or 0/1 flags for a multi-label task."""
    labels = np.asarray(split.labels)
    if labels.size == 0:
        return
    key = f"{split.name}_labels"
    if src.info.task is Task.MULTI_LABEL:
        bad = (labels != 0) & (labels != 1)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise InvalidDataFileError(
                f"{src.path}: {key} must hold 0/1 flags for multi-label {src.info.flag}, but row {row} is "
                f"{labels[row].tolist()} ({int(bad.sum())} values are not 0 or 1).",
                src.layout_fix(),
            )
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= src.info.n_classes:
        raise InvalidDataFileError(
            f"{src.path}: {key} ranges over [{low}, {high}], "
            f"but {src.info.flag} has {src.info.n_classes} classes (0-{src.info.n_classes - 1}).",
            src.layout_fix(),
        )


def load_member(zf: zipfile.ZipFile, member: Member, src: Source, mmap_dir: Path | None) -> np.ndarray:
    """A member in memory, or (with ``mmap_dir``) memory-mapped from its unpacked copy."""
    if mmap_dir is None:
        with reading(src, member.key), zf.open(f"{member.key}.npy") as f:
            try:
                return np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as err:
                raise InvalidDataFileError(
                    f"{src.path}: {member.key} could not be read ({err}).", src.layout_fix()
                ) from err
    dest = mmap_dir / f"{member.key}.npy"
    cached = open_unpacked(dest, member)
    if cached is not None:
        return cached
    check_free_space(mmap_dir, member, src)
    with reading(src, member.key):
        unpack_member(zf, f"{member.key}.npy", dest)
    cached = open_unpacked(dest, member)
    if cached is None:
        raise InvalidDataFileError(
            f"{src.path}: unpacked {member.key} to {dest} but cannot map it back.", src.layout_fix()
        )
    return cached


def open_unpacked(dest: Path, member: Member) -> np.ndarray | None:
    """The memory-mapped cached copy if it exists and matches the member's header, else None."""
    if not dest.is_file():
        return None
    try:
        array = np.load(dest, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        logger.warning("ignoring unreadable cache file %s: %s", dest, err)
        return None
    if array.shape != member.shape or array.dtype != member.dtype:
        logger.warning("ignoring cache file %s: shape/dtype differ from the data file", dest)
        return None
    return array


def unpack_member(zf: zipfile.ZipFile, name: str, dest: Path) -> None:
    """Streams one member out of the zip into ``dest`` (via a temporary name, renamed atomically).

    The member is itself a complete .npy file (header, then the raw array bytes), so copying its decompressed
    bytes verbatim yields a file np.load can memory-map, with no more than one chunk in memory at a time.
    A crash leaves only a temporary file, never a truncated ``dest``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, zf.open(name) as member:
            shutil.copyfileobj(member, out, _COPY_CHUNK)
        os.replace(tmp, dest)
    except BaseException:  # remove the partial file whatever stopped us (even Ctrl-C), then re-raise
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    logger.info("unpacked %s to %s for memory-mapping", name, dest)


def check_free_space(folder: Path, member: Member, src: Source) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < member.file_size:
        raise MedbenchError(
            f"Unpacking {member.key} of {src.path} for memory-mapping needs "
            f"{member.file_size / 2**30:.1f} GiB in {folder}, but only {free / 2**30:.1f} GiB is free.",
            f"Free some space, set ${CACHE_ENV_VAR} to a larger disk, "
            "or raise mmap_threshold to load it into memory.",
        )
