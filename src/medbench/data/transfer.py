"""Moving the bytes of one URL into its ``.part`` file: resumed, retried, with a timeout on every read.

* An interrupted download resumes: the ``.part`` is kept and the next attempt asks for ``Range: bytes=N-``.
  A server that ignores the range (200) or finds it out of bounds (416) makes the download start over.
* Network trouble (refused or reset connections, timeouts, 5xx) is retried with exponential backoff; a
  definite answer such as 404 is not. Every socket operation has a timeout, so a stalled server fails.

Only the standard library does the networking; the one optional output is a ``rich`` progress bar. Checking
what arrived, and putting it in place, is :mod:`medbench.data.url_download`'s job.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

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
from medbench.errors import DownloadError

MAX_BACKOFF_S = 60.0  # however many retries, never wait longer than this between two of them
# Statuses worth retrying: the server is overloaded or briefly broken; any other 4xx will not change.
_RETRY_STATUSES = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")

logger = logging.getLogger(__name__)
_sleep = time.sleep  # a module attribute so tests can record the backoff instead of waiting for it


class _TransientError(Exception):
    """A failure that may go away on its own (network trouble, 5xx): worth another attempt."""


class _PermanentError(Exception):
    """A definite answer (404, 403, a malformed URL) that another attempt would only repeat."""


class _RangeNotSatisfiableError(Exception):
    """HTTP 416: the server has no bytes past our offset; ``total`` is its file size when it says so."""

    def __init__(self, total: int | None):
        super().__init__(f"range not satisfiable (remote size {total})")
        self.total = total


def fetch_with_retries(
    url: str,
    part: Path,
    *,
    fix: str,
    bar: TransferBar,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    chunk_size: int = 1 << 20,
) -> None:
    """Fills ``part`` with the whole remote file, retrying transient failures with exponential backoff.

    Args:
        fix: the advice of the :class:`DownloadError` raised when it fails for good.
        bar: what each attempt reports its progress to (see :func:`progress_bar`).
        retries, timeout, backoff, chunk_size: as for :func:`medbench.data.url_download.download_url`.
    """
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


def _fetch_once(url: str, part: Path, *, timeout: float, chunk_size: int, bar: TransferBar) -> None:
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


def _copy(response: Any, out: BinaryIO, chunk_size: int, bar: TransferBar) -> int:
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


# --- progress -----------------------------------------------------------------------------------------------


class TransferBar:
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
def progress_bar(enabled: bool, label: str) -> Iterator[TransferBar]:
    """A rich progress bar on stderr (stdout stays clean for a command's output), or a silent stand-in."""
    if not enabled:
        yield TransferBar(None, label)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield TransferBar(progress, label)
