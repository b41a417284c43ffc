"""Downloading MedMNIST files and pretrained weights so that a bad file can never be used.

The rules, in order of importance:

* The final path only ever holds a verified file. Bytes go to ``<dest>.part``; it is renamed over the final
  path (atomically, with :func:`os.replace`) only after its checksum matches (MD5 for MedMNIST, a SHA-256
  prefix for torch hub weights), and a corrupt ``.part`` is deleted.
* A user's file is never deleted or overwritten: a file at the final path that fails its MD5 is moved aside
  (``<name>.corrupt-<YYYYmmdd-HHMMSS>``) before the official one is fetched, or, where the caller asks,
  refused with the fix (``medbench run`` does: it must not replace a file the user put there).
* One process downloads a file at a time: a second waits on ``<dest>.lock`` (:mod:`medbench.locks`) and then
  finds the verified file, instead of both writing one ``.part``.
* An interrupted download resumes: the ``.part`` is kept and the next attempt asks for ``Range: bytes=N-``.
  A server that ignores the range (200) or finds it out of bounds (416) makes the download start over.
* Network trouble (refused or reset connections, timeouts, 5xx) is retried with exponential backoff; a
  definite answer such as 404 is not. Every socket operation has a timeout, so a stalled server fails.
* When it fails for good, the error says which URL, why, how to fetch the file by hand and where to put it.

Only the standard library does the networking; the one optional output is a ``rich`` progress bar.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from medbench import __version__
from medbench.data.checksums import md5sum, sha256sum
from medbench.data.registry import get_dataset, local_path
from medbench.errors import ChecksumError, ConfigError, DownloadError
from medbench.locks import download_lock

MIRROR_ENV_VAR = "MEDBENCH_MIRROR"
PART_SUFFIX = ".part"
MAX_BACKOFF_S = 60.0  # however many retries, never wait longer than this between two of them
_MIRROR_SCHEMES = ("http://", "https://", "file://")
# Statuses worth retrying: the server is overloaded or briefly broken; any other 4xx will not change.
_RETRY_STATUSES = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")

logger = logging.getLogger(__name__)
_sleep = time.sleep  # a module attribute so tests can record the backoff instead of waiting for it


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


class _TransientError(Exception):
    """A failure that may go away on its own (network trouble, 5xx): worth another attempt."""


class _PermanentError(Exception):
    """A definite answer (404, 403, a malformed URL) that another attempt would only repeat."""


class _RangeNotSatisfiableError(Exception):
    """HTTP 416: the server has no bytes past our offset; ``total`` is its file size when it says so."""

    def __init__(self, total: int | None):
        super().__init__(f"range not satisfiable (remote size {total})")
        self.total = total


# --- public API ---------------------------------------------------------------------------------------------


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

    It always downloads (skipping a file that is already there is :func:`download_dataset`'s job), and an
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
        return _download_locked(
            url,
            dest,
            md5=md5,
            sha256=sha256,
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            progress=progress,
            chunk_size=chunk_size,
        )


def _download_locked(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: bool = True,
    chunk_size: int = 1 << 20,
) -> Path:
    """:func:`download_url` once this process holds ``dest``'s download lock."""
    part = part_path(dest)
    with _progress_bar(progress, dest.name) as bar:
        _fetch_with_retries(
            url,
            part,
            fix=_manual_fix(url, dest, md5, sha256=sha256),
            retries=retries,
            timeout=timeout,
            backoff=backoff,
            chunk_size=chunk_size,
            bar=bar,
        )
    if md5 is not None:
        _check_digest(part, "md5", url=url, dest=dest, expected=md5)
    if sha256 is not None:
        _check_digest(part, "sha256", url=url, dest=dest, expected=sha256)
    os.replace(part, dest)  # atomic on POSIX and Windows: readers see the old file or the verified new one
    return dest


def dataset_url(name: str, size: int = 28) -> str:
    """The URL a dataset file is fetched from: ``$MEDBENCH_MIRROR/<file name>`` if set, else the official one.

    Raises:
        ConfigError: ``MEDBENCH_MIRROR`` is set but is not an http(s):// or file:// URL.
    """
    info = get_dataset(name)
    mirror = os.environ.get(MIRROR_ENV_VAR, "").strip()
    if not mirror:
        return info.remote(size).url
    if not mirror.startswith(_MIRROR_SCHEMES):
        raise ConfigError(
            f"{MIRROR_ENV_VAR}={mirror!r} is not a URL.",
            "Set it to the base URL of a folder holding the MedMNIST files, "
            "e.g. https://example.org/medmnist/, or unset it to download from Zenodo.",
        )
    return f"{mirror.rstrip('/')}/{info.filename(size)}"


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
        **kwargs: passed on to :func:`download_url` (``retries``, ``timeout``, ``backoff``, ``chunk_size``).

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
            return _download_locked(url, dest, md5=remote.md5, progress=progress, **kwargs)
        except DownloadError as err:
            # The mirror may be what failed: point the user at the official file, the one to fetch by hand.
            fix = _manual_fix(remote.url, dest, remote.md5)
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


def _manual_fix(url: str, dest: Path, md5: str | None, *, sha256: str | None = None) -> str:
    """How to get the file without medbench: what to fetch, what it must hash to, where exactly it goes."""
    checks = [f"MD5 is {md5}"] if md5 else []
    if sha256:
        checks.append(f"SHA-256 {'is' if len(sha256) == 64 else 'starts with'} {sha256}")
    check = f", check that its {' and its '.join(checks)}," if checks else ""
    return (
        f"Download {url} by hand (for example in a browser){check} and save it in the folder "
        f"{dest.parent} under the file name {dest.name}."
    )


# --- the download loop --------------------------------------------------------------------------------------


def _fetch_with_retries(
    url: str,
    part: Path,
    *,
    fix: str,
    retries: int,
    timeout: float,
    backoff: float,
    chunk_size: int,
    bar: _Bar,
) -> None:
    """Fills ``part`` with the whole remote file, retrying transient failures with exponential backoff."""
    attempts = retries + 1
    for attempt in range(attempts):
        try:
            _fetch_once(url, part, timeout=timeout, chunk_size=chunk_size, bar=bar)
            return
        except _PermanentError as err:
            raise DownloadError(f"Could not download {url}: {err}.", fix) from err
        except _TransientError as err:
            if attempt == attempts - 1:
                raise DownloadError(
                    f"Could not download {url}: {err} (gave up after {attempts} attempts).",
                    fix,
                ) from err
            wait = min(backoff * 2**attempt, MAX_BACKOFF_S)
            logger.warning("Download of %s failed (%s); retrying in %.3g s.", url, err, wait)
            _sleep(wait)


def _fetch_once(url: str, part: Path, *, timeout: float, chunk_size: int, bar: _Bar) -> None:
    """One attempt: appends the missing bytes to ``part``, or rewrites it when the server sends everything.

    A short body leaves the bytes it did bring in ``part`` for the next attempt to resume from.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except _RangeNotSatisfiableError as err:
        if err.total == offset:
            return  # the .part is complete (a crash between download and rename); the MD5 check decides
        # The .part is longer than the remote file, so it cannot be a prefix of it.
        part.unlink()
        offset = 0
        response = _open(url, offset, timeout)
    with response:
        offset = _start_offset(response, offset, part)
        total = _total_size(response, offset)
        bar.start(total=total, completed=offset)
        with part.open("ab" if offset else "wb") as out:  # "wb": a full body replaces any stale .part
            received = _copy(response, out, chunk_size, bar)
    if total is not None and offset + received < total:
        raise _TransientError(f"the connection closed after {offset + received} of {total} bytes")


def _open(url: str, offset: int, timeout: float) -> Any:  # HTTPResponse, or addinfourl for file://
    """Sends the request (with a Range header when resuming); sorts failures into transient or permanent."""
    headers = {
        "User-Agent": f"medbench/{__version__}",  # some hosts reject urllib's default agent
        "Accept-Encoding": "identity",  # byte offsets and lengths must refer to the file itself
    }
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()  # frees the connection; the error page is of no use
        if err.code == 416 and offset:
            raise _RangeNotSatisfiableError(_content_range(err.headers.get("Content-Range"))[1]) from err
        reason = f"HTTP {err.code} {err.reason}"
        if err.code >= 500 or err.code in _RETRY_STATUSES:
            raise _TransientError(reason) from err
        raise _PermanentError(reason) from err
    except ValueError as err:  # urllib's answer to a malformed URL or an unknown scheme
        raise _PermanentError(f"invalid URL ({err})") from err
    except (
        OSError,
        http.client.HTTPException,
    ) as err:  # refused, reset, unresolvable, timed out (URLError too)
        raise _TransientError(_describe(err)) from err


def _start_offset(response: Any, offset: int, part: Path) -> int:
    """Where the body starts in the file: ``offset`` if the server honoured the range, else 0 (start over)."""
    if not offset or getattr(response, "status", None) != 206:
        return 0  # a 200 to a Range request is the whole file
    start = _content_range(response.headers.get("Content-Range"))[0]
    if start != offset:
        # Bytes for some other offset cannot be appended; drop the .part so the next attempt starts clean.
        part.unlink()
        raise _TransientError(f"the server sent bytes from offset {start} when asked for {offset}")
    return offset


def _total_size(response: Any, offset: int) -> int | None:
    """The size of the whole file, if the server said (Content-Length counts the bytes from ``offset`` on)."""
    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit():
        return offset + int(length)
    return _content_range(response.headers.get("Content-Range"))[1]


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """Parses ``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) into (START, TOTAL), None where absent."""
    match = _CONTENT_RANGE.fullmatch(value.strip()) if value else None
    if match is None:
        return None, None
    start, _end, total = match.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def _copy(response: Any, out: BinaryIO, chunk_size: int, bar: _Bar) -> int:
    """Streams the body into ``out``; returns the number of bytes written."""
    received = 0
    while chunk := _read(response, chunk_size):
        out.write(chunk)  # a local write error (disk full) is not a download problem, so it is not caught
        received += len(chunk)
        bar.advance(len(chunk))
    return received


def _read(response: Any, size: int) -> bytes:
    """Reads one chunk, turning network failures mid-body (timeout, reset) into a retryable error."""
    # read1 returns what has arrived so far. read(size) would wait for all of it and, when the socket times
    # out, drop the bytes it had buffered, so a transfer that stalls could not resume from them.
    read = getattr(response, "read1", response.read)
    try:
        return read(size)
    except (OSError, http.client.HTTPException) as err:
        raise _TransientError(_describe(err)) from err


def _describe(err: BaseException) -> str:
    """A short reason for an error message, without urllib's nesting (``<urlopen error [Errno 111] ...>``)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        reason = err.reason
        return _describe(reason) if isinstance(reason, BaseException) else str(reason)
    if isinstance(err, TimeoutError):
        return "timed out waiting for the server"
    if isinstance(err, http.client.IncompleteRead):
        return "the connection closed in the middle of the file"
    return str(err) or type(err).__name__


def _check_digest(part: Path, algo: str, *, url: str, dest: Path, expected: str) -> None:
    """Raises ChecksumError (after deleting ``part``) unless its digest matches ``expected``.

    ``algo`` is ``"md5"`` (the whole digest must match) or ``"sha256"`` (``expected`` may be a prefix).
    """
    expected = expected.lower()
    if algo == "md5":
        actual = md5sum(part)
        ok, label, wanted = actual == expected, "MD5", f"{expected} was expected"
        fix = _manual_fix(url, dest, expected)
    else:
        actual = sha256sum(part)
        ok, label = actual.startswith(expected), "SHA-256"
        wanted = f"{expected} was expected" if len(expected) == 64 else f"it should start with {expected}"
        fix = _manual_fix(url, dest, None, sha256=expected)
    if ok:
        return
    part.unlink()  # resuming from corrupt bytes could never succeed
    raise ChecksumError(
        f"The file downloaded from {url} has {label} {actual}, but {wanted}.",
        "The corrupt download was deleted; run again to retry. If it happens again, the server or a proxy is "
        f"serving another file: {fix}",
    )


# --- progress -----------------------------------------------------------------------------------------------


class _Bar:
    """The download loop reports to this whether or not a bar is shown, so it needs no ``if progress``."""

    def __init__(self, progress: Progress | None, label: str):
        self._progress = progress
        self._task = progress.add_task(label, total=None) if progress is not None else None

    def start(self, *, total: int | None, completed: int) -> None:
        """(Re)starts the bar for an attempt: resumed bytes count as done."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, completed=completed)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


@contextmanager
def _progress_bar(enabled: bool, label: str) -> Iterator[_Bar]:
    """A rich progress bar on stderr (stdout stays clean for a command's output), or a silent stand-in."""
    if not enabled:
        yield _Bar(None, label)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _Bar(progress, label)
