"""Downloading one URL to a file that is only ever there verified (MedMNIST files and pretrained weights).

The rules, in order of importance:

* The final path only ever holds a verified file. Bytes go to ``<dest>.part``; it is renamed over the final
  path (atomically, with :func:`os.replace`) only after its checksum matches (MD5 for MedMNIST, a SHA-256
  prefix for torch hub weights), and a corrupt ``.part`` is deleted.
* A file that is there but fails its checksum is never deleted: :func:`move_aside` renames it to
  ``<name>.corrupt-<YYYYmmdd-HHMMSS>``.
* One process downloads a file at a time: a second waits on ``<dest>.lock`` (:mod:`medbench.locks`) and then
  finds the verified file, instead of both writing one ``.part``.
* An interrupted download resumes and network trouble is retried (:mod:`medbench.data.transfer`).
* When it fails for good, the error says which URL, why, how to fetch the file by hand and where to put it.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from medbench.data.checksums import md5sum, sha256sum
from medbench.data.transfer import fetch_with_retries, progress_bar
from medbench.errors import ChecksumError, ConfigError
from medbench.locks import download_lock

PART_SUFFIX = ".part"
_MIRROR_SCHEMES = ("http://", "https://", "file://")


def part_path(dest: str | os.PathLike) -> Path:
    """Where the bytes of ``dest`` collect until they are verified: ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + PART_SUFFIX)


def download_url(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: bool = True,
    chunk_size: int = 1 << 20,
) -> Path:
    """Downloads ``url`` to ``dest``, resuming a previous ``.part`` and checking it before the rename.

    It always downloads (skipping a file that is already there is
    :func:`medbench.data.download.download_dataset`'s job), and an
    existing ``dest`` is only replaced once the new file has been verified.

    Args:
        url: an ``http(s)://`` (or ``file://``) URL.
        dest: the final file path; its folder is created if needed.
        md5: the expected MD5 (hex); ``None`` skips the check.
        sha256: the expected SHA-256 (hex), or a prefix of it: torch hub names a file after the first hex
            digits of its SHA-256 (``resnet18-f37072fd.pth``); ``None`` skips the check.
        retries: attempts after the first one for transient failures (connection errors, timeouts, 5xx).
        timeout: seconds any single connect or read may block, so a stalled server fails instead of hanging.
        backoff: the wait before the first retry in seconds; it doubles for every further retry.
        progress: show a ``rich`` progress bar on stderr.
        chunk_size: the most bytes taken from the socket per read (each read advances the bar and ``.part``).

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: the URL answered with an error such as 404, or the retries ran out.
        ChecksumError: the downloaded file does not match ``md5`` or ``sha256``; the ``.part`` has been
            deleted.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, not {retries}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{1,64}", sha256):
        raise ValueError(f"sha256 must be 1 to 64 hex digits, not {sha256!r}")  # "" would accept any file
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with download_lock(dest):
        return download_locked(
            url,
            dest,
            md5=md5,
            sha256=sha256,
            progress=progress,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            chunk_size=chunk_size,
        )


def download_locked(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    **transfer: Any,
) -> Path:
    """:func:`download_url` once this process holds ``dest``'s download lock.

    ``transfer`` holds :func:`medbench.data.transfer.fetch_with_retries`'s ``retries``, ``timeout``,
    ``backoff`` and ``chunk_size``; what is not given takes its default there.
    """
    part = part_path(dest)
    with progress_bar(progress, dest.name) as bar:
        fetch_with_retries(url, part, fix=manual_fix(url, dest, md5, sha256=sha256), bar=bar, **transfer)
    if md5 is not None:
        _check_digest(part, "md5", url=url, dest=dest, expected=md5)
    if sha256 is not None:
        _check_digest(part, "sha256", url=url, dest=dest, expected=sha256)
    os.replace(part, dest)  # atomic on POSIX and Windows: readers see the old file or the verified new one
    return dest


def mirror_base(env_var: str, *, fix: str) -> str | None:
    """The base URL in the mirror variable ``env_var`` (without a trailing ``/``), or None when it is unset.

    Raises:
        ConfigError: the variable is set but is not an http(s):// or file:// URL; ``fix`` says what it
            should hold.
    """
    mirror = os.environ.get(env_var, "").strip()
    if not mirror:
        return None
    if not mirror.startswith(_MIRROR_SCHEMES):
        raise ConfigError(f"{env_var}={mirror!r} is not a URL.", fix)
    return mirror.rstrip("/")


def move_aside(path: Path) -> Path:
    """Renames ``path`` to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` (never over an existing file); returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.rename(path, aside)
    return aside


def manual_fix(url: str, dest: Path, md5: str | None, *, sha256: str | None = None) -> str:
    """How to get the file without medbench: what to fetch, what it must hash to, where exactly it goes."""
    checks = [f"MD5 is {md5}"] if md5 else []
    if sha256:
        checks.append(f"SHA-256 {'is' if len(sha256) == 64 else 'starts with'} {sha256}")
    check = f", check that its {' and its '.join(checks)}," if checks else ""
    return (
        f"Download {url} by hand (for example in a browser){check} and save it in the folder "
        f"{dest.parent} under the file name {dest.name}."
    )


def _check_digest(part: Path, algo: str, *, url: str, dest: Path, expected: str) -> None:
    """Raises ChecksumError (after deleting ``part``) unless its digest matches ``expected``.

    ``algo`` is ``"md5"`` (the whole digest must match) or ``"sha256"`` (``expected`` may be a prefix).
    """
    expected = expected.lower()
    if algo == "md5":
        actual = md5sum(part)
        ok, label, wanted = actual == expected, "MD5", f"{expected} was expected"
        fix = manual_fix(url, dest, expected)
    else:
        actual = sha256sum(part)
        ok, label = actual.startswith(expected), "SHA-256"
        wanted = f"{expected} was expected" if len(expected) == 64 else f"it should start with {expected}"
        fix = manual_fix(url, dest, None, sha256=expected)
    if ok:
        return
    part.unlink()  # resuming from corrupt bytes could never succeed
    raise ChecksumError(
        f"The file downloaded from {url} has {label} {actual}, but {wanted}.",
        "The corrupt download was deleted; run again to retry. If it happens again, the server or a proxy is "
        f"serving another file: {fix}",
    )
