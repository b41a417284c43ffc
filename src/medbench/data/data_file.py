"""A data file's identity: which dataset and size it claims to be, its hashes (cached in a sidecar keyed by
size and mtime), and the errors that say what is wrong with it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medbench.data.registry import (
    ROOT_ENV_VAR,
    SPLITS,
    DatasetInfo,
    Task,
)
from medbench.errors import ChecksumError, DataFileMissingError, InvalidDataFileError
from medbench.paths import cache_dir

if TYPE_CHECKING:
    from medbench.data.npz_archive import Member

logger = logging.getLogger(__name__)
_HASH_CHUNK = 8 * 2**20
_HASH_ALGOS = ("md5", "sha256")


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
    md5, sha256 = hash_file(path)
    try:
        write_atomic(sidecar, json.dumps({**key, "md5": md5, "sha256": sha256}, indent=1).encode())
    except OSError as err:  # a cache that cannot be written only costs a re-hash next time
        logger.debug("could not write hash sidecar %s: %s", sidecar, err)
    return md5, sha256


@dataclass(frozen=True)
class Source:
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
class Identity:
    official: bool
    verified: bool
    md5: str | None
    sha256: str | None
    notes: tuple[str, ...]


def identify(src: Source, cache: Path, *, verify: bool, need_hash: bool) -> Identity:
    """Hashes the file when needed and decides whether it is the official one."""
    official_name = src.info.filename(src.size)
    if not (verify or need_hash):
        return Identity(True, False, None, None, ("MD5 not checked (verify=False)",))
    md5, sha256 = file_hashes(src.path, cache)
    matches = md5 == src.official_md5
    if src.custom:
        differs = f"custom file (MD5 differs from the official {official_name})"
        note = f"MD5 matches the official {official_name}" if matches else differs
        return Identity(matches, matches, md5, sha256, (note,))
    if not matches and verify:
        raise ChecksumError(
            f"{src.path} has MD5 {md5}, but the official {official_name} has {src.official_md5}: "
            "it is damaged or not the official file.",
            f"{src.replace_fix()} To use it anyway as a custom file, pass it with `--data-file PATH`.",
        )
    notes = () if matches else (f"MD5 differs from the official {official_name} (verify=False, used anyway)",)
    return Identity(matches, matches, md5, sha256, notes)


def missing_error(src: Source) -> DataFileMissingError:
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


def corrupt_error(src: Source, err: BaseException, key: str | None = None) -> InvalidDataFileError:
    where = f" (member {key}.npy)" if key else ""
    fix = src.replace_fix()
    if src.custom:
        fix = f"Re-create or re-download it; the official file comes from {src.download_cmd}."
    return InvalidDataFileError(f"{src.path} is not a readable npz (zip) file{where}: {err}.", fix)


def split_size_notes(members: Mapping[str, Member], src: Source, *, official: bool) -> list[str]:
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


def hash_file(path: Path) -> tuple[str, str]:
    # One read feeds both digests: for a 12 GB file, reading twice would double the first load.
    # usedforsecurity=False: these check integrity, and FIPS-mode Pythons refuse MD5 otherwise.
    digests = [hashlib.new(name, usedforsecurity=False) for name in _HASH_ALGOS]
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            for digest in digests:
                digest.update(chunk)
    md5, sha256 = (d.hexdigest() for d in digests)
    return md5, sha256


def write_atomic(dest: Path, data: bytes) -> None:
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
