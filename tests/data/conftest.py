"""A real local HTTP server for the downloader's tests: the real MedMNIST files, with scripted failures.

It runs in a thread on 127.0.0.1 (port chosen by the OS), honours ``Range: bytes=N-`` and answers 416 past the
end, and for each path plays a queue of modes, one per request, then serves normally:

* ``"ok"``: the file (206 for a Range request, else 200).
* ``"ignore-range"``: the whole file with 200 even when a range was asked for.
* ``"cut:N"``: headers for the whole answer, then N bytes of the body, then the connection closes.
* ``"stall"``: reads the request and sends nothing; ``"stall-after:N"`` sends N body bytes first.
* ``"wrong"``: a body of the right length with every byte flipped.
* ``"404"``, ``"500"``: that error status.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# The official files, shared read-only beside the repository (the same place in CI): never write there.
SHARED_MEDMNIST = Path(__file__).resolve().parents[2].parent / "shared/data/medmnist"
SERVED = ("pneumoniamnist.npz", "breastmnist.npz")
STALL_LIMIT_S = 10.0  # a stalled handler gives up on its own even if teardown never releases it
_FLIP = bytes(range(255, -1, -1))  # translate table: every byte b becomes 255 - b, so no byte stays right
_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass(frozen=True)
class Hit:
    """One request the server received."""

    path: str
    range: str | None


class FakeServer:
    """What tests talk to: URLs, per-path failure plans, and the log of requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files  # URL path -> body
        self.hits: list[Hit] = []
        self.stop = threading.Event()
        self._plans: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self.base_url = ""  # set once the socket is bound

    def url(self, path: str) -> str:
        return self.base_url + path

    def plan(self, path: str, *modes: str) -> None:
        """The next requests for ``path`` get these modes in order; later ones are served normally."""
        with self._lock:
            self._plans.setdefault(path, deque()).extend(modes)

    def next_mode(self, path: str) -> str:
        with self._lock:
            queue = self._plans.get(path)
            return queue.popleft() if queue else "ok"

    def hits_for(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]


class _Server(ThreadingHTTPServer):
    fake: FakeServer

    def handle_error(self, request, client_address) -> None:
        # Clients hanging up mid-body (timeouts, cuts) are the point here, not a failure worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log is kept in FakeServer.hits instead of on stderr

    def do_GET(self) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path  # drop Zenodo-style "?download=1"
        asked = self.headers.get("Range")
        fake.hits.append(Hit(path, asked))
        mode, _, arg = fake.next_mode(path).partition(":")
        self.close_connection = True
        if mode in ("404", "500"):
            self.send_error(int(mode))
        elif mode == "stall":
            fake.stop.wait(STALL_LIMIT_S)
        elif path not in fake.files:
            self.send_error(404)
        else:
            body = fake.files[path].translate(_FLIP) if mode == "wrong" else fake.files[path]
            match = _RANGE.fullmatch(asked or "") if mode != "ignore-range" else None
            self._send(body, int(match.group(1)) if match else None, mode, int(arg or 0))

    def _send(self, body: bytes, start: int | None, mode: str, n: int) -> None:
        size = len(body)
        if start is not None and start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            self.send_response(200)
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            body = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:n] if mode in ("cut", "stall-after") else body)
        if mode == "stall-after":
            self.server.fake.stop.wait(STALL_LIMIT_S)


@pytest.fixture(scope="session")
def official_files() -> dict[str, bytes]:
    """The real official files by name, read once per session."""
    missing = [name for name in SERVED if not (SHARED_MEDMNIST / name).is_file()]
    if missing:
        pytest.skip(f"the official MedMNIST files {missing} are not in {SHARED_MEDMNIST}")
    return {name: (SHARED_MEDMNIST / name).read_bytes() for name in SERVED}


@pytest.fixture
def http_server(official_files: dict[str, bytes]) -> Iterator[FakeServer]:
    """A running server with the official files at ``/<file name>``; stopped (stalls released) afterwards."""
    fake = FakeServer({f"/{name}": body for name, body in official_files.items()})
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    host, port = server.server_address[:2]
    fake.base_url = f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
