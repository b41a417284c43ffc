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

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medbench.data.registry import (
    ROOT_ENV_VAR,
    SPLITS,
    DatasetInfo,
    Task,
    check_size,
    get_dataset,
    local_path,
)
from medbench.errors import ChecksumError, DataFileMissingError, InvalidDataFileError, MedbenchError
from medbench.paths import CACHE_ENV_VAR, cache_dir

logger = logging.getLogger(__name__)

DEFAULT_MMAP_THRESHOLD = 512 * 2**20  # bytes of one uncompressed member; larger ones are memory-mapped
KEYS: tuple[str, ...] = tuple(f"{split}_{kind}" for kind in ("images", "labels") for split in SPLITS)
_COPY_CHUNK = 16 * 2**20  # peak extra RAM while unpacking a member
_HASH_CHUNK = 8 * 2**20
_HASH_ALGOS = ("md5", "sha256")


# ---- what a load returns ----------------------------------------------------------------------------------


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


# ---- the public entry points ------------------------------------------------------------------------------


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
    src = _Source(
        info,
        size,
        Path(path).expanduser() if path is not None else local_path(name, size, root),
        path is not None,
    )
    if not src.path.is_file():
        raise _missing_error(src)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(src.path)
    with _open_zip(src) as zf:
        members = _read_headers(zf, src)
        _check_layout(members, src)
        lazy = {k for k, m in members.items() if mmap_threshold is not None and m.file_size > mmap_threshold}
        identity = _identify(src, cache, verify=verify, need_hash=src.custom or bool(lazy))
        notes = [*identity.notes, *_split_size_notes(members, src, official=identity.official)]
        mmap_dir = cache / f"{src.path.stem}-{identity.sha256[:16]}" if lazy and identity.sha256 else None
        arrays = {key: _load_member(zf, members[key], src, mmap_dir if key in lazy else None) for key in KEYS}
    splits = {s: Split(s, arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}
    for split in splits.values():
        _check_labels(split, src)
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


def default_cache_dir(data_file: str | os.PathLike) -> Path:
    """Where unpacked members and hash sidecars for ``data_file`` go: medbench's own cache, whatever the file
    (its entries are named after the file's content or path, so one folder serves every data root)."""
    return cache_dir()


def file_hashes(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(md5, sha256)`` of a file in one read, reusing a sidecar while the file's size and mtime hold."""
    path = Path(path).resolve()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(path)
    info = path.stat()
    key = {"path": str(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    sidecar = cache / f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}.hashes.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        if all(record.get(k) == v for k, v in key.items()):
            return record["md5"], record["sha256"]
    md5, sha256 = _hash_file(path)
    try:
        _write_atomic(sidecar, json.dumps({**key, "md5": md5, "sha256": sha256}, indent=1).encode())
    except OSError as err:  # a cache that cannot be written only costs a re-hash next time
        logger.debug("could not write hash sidecar %s: %s", sidecar, err)
    return md5, sha256


# ---- internals: identity and messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """The file being loaded and what it is meant to be, for checks and messages."""

    info: DatasetInfo
    size: int
    path: Path
    custom: bool

    @property
    def download_cmd(self) -> str:
        return f"`medbench download {self.info.flag} --size {self.size}`"

    @property
    def official_md5(self) -> str:
        return self.info.remote(self.size).md5

    def image_shape(self) -> str:
        return f"(N, {self.size}, {self.size}" + (", 3)" if self.info.n_channels == 3 else ")")

    def replace_fix(self) -> str:
        """How to get the official file in place of this one, which is kept (medbench deletes no data)."""
        return (
            f"Run {self.download_cmd}: it moves this file aside (to {self.path.name}.corrupt-<date>) and "
            "fetches the official one."
        )

    def layout_fix(self) -> str:
        if not self.custom:
            return self.replace_fix()
        labels = f"(N, {self.info.n_classes}) of 0/1" if self.info.task is Task.MULTI_LABEL else "(N, 1)"
        return (
            "Write it in the official MedMNIST layout (np.savez_compressed with keys "
            f"{{train,val,test}}_images as uint8 {self.image_shape()} and {{train,val,test}}_labels as "
            f"integers {labels}), or use the official file: {self.download_cmd}."
        )


@dataclass(frozen=True)
class _Identity:
    official: bool
    verified: bool
    md5: str | None
    sha256: str | None
    notes: tuple[str, ...]


def _identify(src: _Source, cache: Path, *, verify: bool, need_hash: bool) -> _Identity:
    """Hashes the file when needed and decides whether it is the official one."""
    official_name = src.info.filename(src.size)
    if not (verify or need_hash):
        return _Identity(True, False, None, None, ("MD5 not checked (verify=False)",))
    md5, sha256 = file_hashes(src.path, cache)
    matches = md5 == src.official_md5
    if src.custom:
        differs = f"custom file (MD5 differs from the official {official_name})"
        note = f"MD5 matches the official {official_name}" if matches else differs
        return _Identity(matches, matches, md5, sha256, (note,))
    if not matches and verify:
        raise ChecksumError(
            f"{src.path} has MD5 {md5}, but the official {official_name} has {src.official_md5}: "
            "it is damaged or not the official file.",
            f"{src.replace_fix()} To use it anyway as a custom file, pass it with `--data-file PATH`.",
        )
    notes = () if matches else (f"MD5 differs from the official {official_name} (verify=False, used anyway)",)
    return _Identity(matches, matches, md5, sha256, notes)


def _missing_error(src: _Source) -> DataFileMissingError:
    if src.custom:
        return DataFileMissingError(
            f"No data file at {src.path} (given as the file for {src.info.flag}).",
            f"Check the path, or drop `--data-file` to use the official file "
            f"({src.download_cmd} fetches it).",
        )
    return DataFileMissingError(
        f"No {src.info.title} file for {src.size} px at {src.path}.",
        f"Run {src.download_cmd} (set the data root with --root or ${ROOT_ENV_VAR}), "
        "or point at an existing file with `--data-file PATH`.",
    )


def _corrupt_error(src: _Source, err: BaseException, key: str | None = None) -> InvalidDataFileError:
    where = f" (member {key}.npy)" if key else ""
    fix = src.replace_fix()
    if src.custom:
        fix = f"Re-create or re-download it; the official file comes from {src.download_cmd}."
    return InvalidDataFileError(f"{src.path} is not a readable npz (zip) file{where}: {err}.", fix)


def _split_size_notes(members: Mapping[str, _Member], src: _Source, *, official: bool) -> list[str]:
    """Split sizes that differ from the registry: an error for an official file, a note for a custom one."""
    expected = src.info.n_samples
    found = {s: members[f"{s}_images"].shape[0] for s in SPLITS}
    diffs = [f"{s} {found[s]} vs {expected[s]}" for s in SPLITS if found[s] != expected.get(s)]
    if not diffs:
        return []
    if not official:
        return [f"split sizes differ from official ({', '.join(diffs)})"]
    raise InvalidDataFileError(
        f"{src.path} is at the official location but its split sizes differ from official {src.info.flag} "
        f"({', '.join(diffs)}).",
        f"{src.layout_fix()} A subset or other custom file belongs elsewhere, "
        "passed with `--data-file PATH`.",
    )


# ---- internals: reading the zip ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    file_size: int  # uncompressed bytes, header included


@contextlib.contextmanager
def _reading(src: _Source, key: str | None = None) -> Iterator[None]:
    """Turns the ways a damaged zip fails (bad CRC, truncated deflate stream) into one clear error."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _corrupt_error(src, err, key) from err


@contextlib.contextmanager
def _open_zip(src: _Source) -> Iterator[zipfile.ZipFile]:
    with _reading(src):
        zf = zipfile.ZipFile(src.path)
    with zf:
        yield zf


def _read_headers(zf: zipfile.ZipFile, src: _Source) -> dict[str, _Member]:
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
        with _reading(src, key), zf.open(names[key]) as f:
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
        members[key] = _Member(key, tuple(shape), np.dtype(dtype), fortran, names[key].file_size)
    return members


def _check_layout(members: Mapping[str, _Member], src: _Source) -> None:
    """Dtypes, shapes and lengths from the headers alone, so a wrong file fails before any data is read."""
    for split in SPLITS:
        images, labels = members[f"{split}_images"], members[f"{split}_labels"]
        if images.dtype != np.uint8:
            raise InvalidDataFileError(
                f"{src.path}: {images.key} has dtype {images.dtype}, expected uint8 (pixel values 0-255).",
                src.layout_fix(),
            )
        _check_image_shape(images, src)
        _check_label_header(labels, src)
        if images.shape[0] != labels.shape[0]:
            raise InvalidDataFileError(
                f"{src.path}: {images.key} has {images.shape[0]} images "
                f"but {labels.key} has {labels.shape[0]} labels.",
                src.layout_fix(),
            )


def _check_image_shape(member: _Member, src: _Source) -> None:
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


def _check_label_header(member: _Member, src: _Source) -> None:
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


def _check_labels(split: Split, src: _Source) -> None:
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


def _load_member(zf: zipfile.ZipFile, member: _Member, src: _Source, mmap_dir: Path | None) -> np.ndarray:
    """A member in memory, or (with ``mmap_dir``) memory-mapped from its unpacked copy."""
    if mmap_dir is None:
        with _reading(src, member.key), zf.open(f"{member.key}.npy") as f:
            try:
                return np.lib.format.read_array(f, allow_pickle=False)
            except ValueError as err:
                raise InvalidDataFileError(
                    f"{src.path}: {member.key} could not be read ({err}).", src.layout_fix()
                ) from err
    dest = mmap_dir / f"{member.key}.npy"
    cached = _open_unpacked(dest, member)
    if cached is not None:
        return cached
    _check_free_space(mmap_dir, member, src)
    with _reading(src, member.key):
        _unpack_member(zf, f"{member.key}.npy", dest)
    cached = _open_unpacked(dest, member)
    if cached is None:
        raise InvalidDataFileError(
            f"{src.path}: unpacked {member.key} to {dest} but cannot map it back.", src.layout_fix()
        )
    return cached


def _open_unpacked(dest: Path, member: _Member) -> np.ndarray | None:
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


def _unpack_member(zf: zipfile.ZipFile, name: str, dest: Path) -> None:
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


def _check_free_space(folder: Path, member: _Member, src: _Source) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < member.file_size:
        raise MedbenchError(
            f"Unpacking {member.key} of {src.path} for memory-mapping needs "
            f"{member.file_size / 2**30:.1f} GiB in {folder}, but only {free / 2**30:.1f} GiB is free.",
            f"Free some space, set ${CACHE_ENV_VAR} to a larger disk, "
            "or raise mmap_threshold to load it into memory.",
        )


# ---- internals: files -------------------------------------------------------------------------------------


def _hash_file(path: Path) -> tuple[str, str]:
    # One read feeds both digests: for a 12 GB file, reading twice would double the first load.
    # usedforsecurity=False: these check integrity, and FIPS-mode Pythons refuse MD5 otherwise.
    digests = [hashlib.new(name, usedforsecurity=False) for name in _HASH_ALGOS]
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for digest in digests:
                digest.update(chunk)
    md5, sha256 = (d.hexdigest() for d in digests)
    return md5, sha256


def _write_atomic(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
