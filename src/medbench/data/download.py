"""Getting the official MedMNIST files under the data root, from Zenodo or a mirror, so a bad file is never used.

* A file already there with the official MD5 is used as it is; nothing is written beside the data.
* A user's file is never deleted or overwritten: a file at the final path that fails its MD5 is moved aside
  (``<name>.corrupt-<YYYYmmdd-HHMMSS>``) before the official one is fetched, or, where the caller asks,
  refused with the fix (``medbench run`` does: it must not replace a file the user put there).
* ``$MEDBENCH_MIRROR`` replaces Zenodo: a folder of the official files, over http(s):// or file://.

How one file is downloaded, verified and put in place is :mod:`medbench.data.url_download`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medbench.data.checksums import md5sum
from medbench.data.registry import get_dataset, local_path
from medbench.data.url_download import download_locked, manual_fix, mirror_base, move_aside, part_path
from medbench.errors import ChecksumError, DownloadError
from medbench.locks import download_lock

MIRROR_ENV_VAR = "MEDBENCH_MIRROR"
_MIRROR_FIX = (
    "Set it to the base URL of a folder holding the MedMNIST files, e.g. https://example.org/medmnist/, "
    "or unset it to download from Zenodo."
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """Whether the local copy of one official file is there and intact."""

    name: str
    size: int
    path: Path
    exists: bool
    md5_expected: str
    md5_actual: str | None  # None when the file does not exist
    ok: bool


def dataset_url(name: str, size: int = 28) -> str:
    """The URL a dataset file is fetched from: ``$MEDBENCH_MIRROR/<file name>`` if set, else the official one.

    Raises:
        ConfigError: ``MEDBENCH_MIRROR`` is set but is not an http(s):// or file:// URL.
    """
    info = get_dataset(name)
    base = mirror_base(MIRROR_ENV_VAR, fix=_MIRROR_FIX)
    return f"{base}/{info.filename(size)}" if base else info.remote(size).url


def download_dataset(
    name: str,
    size: int = 28,
    *,
    root: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    mismatch: Literal["move", "refuse"] = "move",
    **kwargs: Any,
) -> Path:
    """Makes sure the official file of ``name`` at ``size`` is under the data root, downloading it if needed.

    A file already there with the official MD5 is used as it is. One with another MD5 is not used, and never
    deleted: it is moved aside to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` (with a logged warning) before the
    official file is fetched, or, with ``mismatch="refuse"``, left alone and refused with the fix.

    Args:
        name: the dataset flag, e.g. ``"pneumoniamnist"``.
        size: the image size, one the dataset is published at.
        root: the data folder (default: ``$MEDBENCH_DATA_ROOT``, else ``~/.medmnist``); created if missing.
        force: download even if a verified copy is already there, discarding any ``.part``.
        progress: show a progress bar.
        mismatch: what to do with a file at the final path that fails its MD5 (see above).
        **kwargs: passed on to :func:`medbench.data.url_download.download_url` (``retries``, ``timeout``,
            ``backoff``, ``chunk_size``).

    Returns:
        The path of the verified file.

    Raises:
        UnknownDatasetError, InvalidSizeError: for a name or size the registry does not know.
        DownloadError: the file could not be downloaded; the fix says how to fetch it by hand and where to.
        ChecksumError: the downloaded file is not the official one, or (``mismatch="refuse"``) the file
            already there is not.
    """
    info = get_dataset(name)
    remote = info.remote(size)
    dest = local_path(info.flag, size, root)
    if not force and dest.is_file():  # the common case only reads: nothing is written beside the data
        actual = md5sum(dest)
        if actual == remote.md5.lower():
            return dest
        if mismatch == "refuse":
            raise _refusal(dest, actual, remote.md5, flag=info.flag, size=size)
    url = dataset_url(info.flag, size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with download_lock(dest):
        # checked again under the lock: another process may have fetched (or moved) it meanwhile
        if _usable_copy(dest, remote.md5, force=force, mismatch=mismatch, flag=info.flag, size=size):
            return dest
        if force:
            part_path(dest).unlink(missing_ok=True)
        try:
            return download_locked(url, dest, md5=remote.md5, progress=progress, **kwargs)
        except DownloadError as err:
            # The mirror may be what failed: point the user at the official file, the one to fetch by hand.
            fix = manual_fix(remote.url, dest, remote.md5)
            if url != remote.url:
                fix += f" (It was tried from the mirror in ${MIRROR_ENV_VAR}.)"
            raise DownloadError(err.problem, fix) from err


def verify_dataset_file(name: str, size: int = 28, *, root: str | os.PathLike | None = None) -> VerifyResult:
    """Checks the local copy of a dataset file against its official MD5, without downloading anything."""
    info = get_dataset(name)
    expected = info.remote(size).md5
    path = local_path(info.flag, size, root)
    actual = md5sum(path) if path.is_file() else None
    return VerifyResult(
        name=info.flag,
        size=size,
        path=path,
        exists=actual is not None,
        md5_expected=expected,
        md5_actual=actual,
        ok=actual is not None and actual == expected.lower(),
    )


# --- download_dataset helpers -------------------------------------------------------------------------------


def _usable_copy(
    dest: Path, md5: str, *, force: bool, mismatch: Literal["move", "refuse"], flag: str, size: int
) -> bool:
    """True when ``dest`` can be used as it is; a copy that fails its MD5 is moved aside or refused."""
    if not dest.exists():
        return False
    actual = md5sum(dest)
    if actual == md5.lower():
        return not force  # with force, a good copy stays in place until the new one has been verified
    if mismatch == "refuse":
        raise _refusal(dest, actual, md5, flag=flag, size=size)
    aside = move_aside(dest)
    logger.warning(
        "%s has MD5 %s, not the official %s: moved it to %s; downloading the official file.",
        dest,
        actual,
        md5,
        aside.name,
    )
    return False


def _refusal(dest: Path, actual: str, md5: str, *, flag: str, size: int) -> ChecksumError:
    command = f"`medbench download {flag}" + (f" -s {size}`" if size != 28 else "`")
    return ChecksumError(
        f"{dest} has MD5 {actual}, not the official {md5}: it is damaged or not the official file, "
        "and medbench does not replace a file it did not put there.",
        f"Move it away and run again, or run {command}, which keeps it as {dest.name}.corrupt-<date> "
        "and fetches the official file; to use it as it is, pass it as a custom file (--data-file).",
    )
