"""The downloader against a real local HTTP server serving the real official files (see conftest.py).

Nothing here touches the network beyond 127.0.0.1; failures are scripted per request, backoff is zero or
recorded instead of slept, and the one timeout used is short.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medbench.data import download, transfer
from medbench.data.checksums import file_digest, md5sum, sha256sum
from medbench.data.download import MIRROR_ENV_VAR, dataset_url, download_dataset, verify_dataset_file
from medbench.data.registry import ROOT_ENV_VAR, get_dataset
from medbench.data.url_download import download_url, part_path
from medbench.errors import ChecksumError, ConfigError, DownloadError

from .conftest import SHARED_MEDMNIST, FakeServer, Hit

PNEUMONIA = "/pneumoniamnist.npz"
# Quick failure settings: a retry is possible, but never a real wait.
FAST = {"retries": 2, "timeout": 5.0, "backoff": 0.0, "progress": False}


def official_md5(flag: str, size: int = 28) -> str:
    return get_dataset(flag).remote(size).md5


def flipped(body: bytes) -> bytes:
    """What the server's "wrong" mode sends."""
    return body.translate(bytes(range(255, -1, -1)))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user mirror, data root or proxy may leak in (a proxy would swallow requests to 127.0.0.1)."""
    for var in (MIRROR_ENV_VAR, ROOT_ENV_VAR, "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def pneumonia(official_files: dict[str, bytes]) -> bytes:
    return official_files["pneumoniamnist.npz"]


@pytest.fixture
def mirror(http_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """The local server as $MEDBENCH_MIRROR, the way a user behind a proxy would set it up."""
    monkeypatch.setenv(MIRROR_ENV_VAR, http_server.url("/"))
    return http_server


def ranges(server: FakeServer) -> list[str | None]:
    return [hit.range for hit in server.hits]


# --- checksums ----------------------------------------------------------------------------------------------


def test_checksums_of_a_multi_chunk_file_match_hashlib_and_the_registry(pneumonia: bytes) -> None:
    path = SHARED_MEDMNIST / "pneumoniamnist.npz"  # 4 MB: several 1 MiB chunks
    assert md5sum(path) == official_md5("pneumoniamnist")
    assert sha256sum(path) == hashlib.sha256(pneumonia).hexdigest()
    assert file_digest(path, "sha1", chunk_size=1000) == hashlib.sha1(pneumonia).hexdigest()


# --- download_url -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_clean_download_has_the_official_md5(http_server: FakeServer, tmp_path: Path, flag: str) -> None:
    dest = tmp_path / "new" / "folder" / f"{flag}.npz"
    out = download_url(http_server.url(f"/{flag}.npz"), dest, md5=official_md5(flag), **FAST)
    assert out == dest
    assert md5sum(dest) == official_md5(flag)
    assert not part_path(dest).exists()
    assert ranges(http_server) == [None]


def test_progress_bar_keeps_stdout_clean(
    http_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), progress=True)
    assert md5sum(dest) == official_md5("pneumoniamnist")
    assert capsys.readouterr().out == ""  # the bar goes to stderr; stdout belongs to the command's output


def test_transfer_cut_midway_is_resumed_with_a_range_request(http_server: FakeServer, tmp_path: Path) -> None:
    http_server.plan(PNEUMONIA, "cut:1000000")
    dest = tmp_path / "pneumoniamnist.npz"
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == [None, "bytes=1000000-"]
    assert md5sum(dest) == official_md5("pneumoniamnist")
    assert not part_path(dest).exists()


def test_part_left_by_an_earlier_run_is_resumed(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    part_path(dest).write_bytes(pneumonia[:12345])
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == ["bytes=12345-"]
    assert md5sum(dest) == official_md5("pneumoniamnist")


def test_server_ignoring_the_range_makes_the_download_start_over(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    http_server.plan(PNEUMONIA, "ignore-range")
    dest = tmp_path / "pneumoniamnist.npz"
    part_path(dest).write_bytes(pneumonia[:12345])
    # Appending the whole file to the 12345 bytes would break the MD5.
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == ["bytes=12345-"]
    assert md5sum(dest) == official_md5("pneumoniamnist")


def test_complete_part_answered_416_is_verified_and_renamed(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    part_path(dest).write_bytes(pneumonia)
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == [f"bytes={len(pneumonia)}-"]  # no second, full download
    assert md5sum(dest) == official_md5("pneumoniamnist")
    assert not part_path(dest).exists()


def test_part_longer_than_the_remote_file_is_discarded(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    part_path(dest).write_bytes(pneumonia + b"trailing junk")
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == [f"bytes={len(pneumonia) + 13}-", None]
    assert md5sum(dest) == official_md5("pneumoniamnist")


def test_wrong_bytes_raise_checksum_error_and_leave_no_file(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    http_server.plan(PNEUMONIA, "wrong")
    url, dest, expected = (
        http_server.url(PNEUMONIA),
        tmp_path / "pneumoniamnist.npz",
        official_md5("pneumoniamnist"),
    )
    with pytest.raises(ChecksumError) as caught:
        download_url(url, dest, md5=expected, **FAST)
    assert url in caught.value.problem
    assert expected in caught.value.problem
    assert hashlib.md5(flipped(pneumonia)).hexdigest() in caught.value.problem
    assert not dest.exists()
    assert not part_path(dest).exists()


def test_a_failed_check_leaves_an_earlier_file_at_the_final_path_alone(
    http_server: FakeServer, tmp_path: Path
) -> None:
    http_server.plan(PNEUMONIA, "wrong")
    dest = tmp_path / "pneumoniamnist.npz"
    dest.write_bytes(b"previous version")
    with pytest.raises(ChecksumError):
        download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert dest.read_bytes() == b"previous version"  # replaced only by a verified file, never by a bad one


def test_corrupt_part_resumed_into_a_bad_file_is_deleted(
    http_server: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    part_path(dest).write_bytes(flipped(pneumonia[:5000]))
    with pytest.raises(ChecksumError):
        download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert ranges(http_server) == ["bytes=5000-"]
    assert not dest.exists()
    assert not part_path(dest).exists()  # so the next run starts clean instead of failing the same way


def test_404_is_not_retried_and_the_fix_says_where_to_put_the_file(
    http_server: FakeServer, tmp_path: Path
) -> None:
    url, dest, md5 = http_server.url("/nosuchmnist.npz"), tmp_path / "data" / "nosuchmnist.npz", "0" * 32
    with pytest.raises(DownloadError) as caught:
        download_url(url, dest, md5=md5, retries=3, backoff=0.0, progress=False)
    err = caught.value
    assert url in err.problem
    assert "404" in err.problem
    assert md5 in err.fix
    assert str(dest.parent) in err.fix
    assert dest.name in err.fix
    assert len(http_server.hits) == 1
    assert not dest.exists()


def test_stalled_server_fails_after_the_timeout_and_bounded_retries(
    http_server: FakeServer, tmp_path: Path
) -> None:
    # Two stalls for two attempts: a third attempt would be served normally and the test would fail.
    http_server.plan(PNEUMONIA, "stall", "stall")
    dest = tmp_path / "pneumoniamnist.npz"
    with pytest.raises(DownloadError) as caught:
        download_url(http_server.url(PNEUMONIA), dest, retries=1, timeout=0.5, backoff=0.0, progress=False)
    assert "timed out" in caught.value.problem
    assert "2 attempts" in caught.value.problem
    assert len(http_server.hits) == 2
    assert not dest.exists()


def test_stall_in_the_middle_of_the_body_times_out_and_resumes(
    http_server: FakeServer, tmp_path: Path
) -> None:
    http_server.plan(PNEUMONIA, "stall-after:500000")
    dest = tmp_path / "pneumoniamnist.npz"
    md5 = official_md5("pneumoniamnist")
    download_url(
        http_server.url(PNEUMONIA), dest, md5=md5, retries=1, timeout=0.5, backoff=0.0, progress=False
    )
    assert ranges(http_server) == [None, "bytes=500000-"]
    assert md5sum(dest) == md5


def test_a_500_is_retried(http_server: FakeServer, tmp_path: Path) -> None:
    http_server.plan(PNEUMONIA, "500")
    dest = tmp_path / "pneumoniamnist.npz"
    download_url(http_server.url(PNEUMONIA), dest, md5=official_md5("pneumoniamnist"), **FAST)
    assert len(http_server.hits) == 2
    assert md5sum(dest) == official_md5("pneumoniamnist")


def test_retries_back_off_exponentially_then_give_up(
    http_server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(transfer, "_sleep", waits.append)
    http_server.plan(PNEUMONIA, *["500"] * 4)
    with pytest.raises(DownloadError) as caught:
        download_url(http_server.url(PNEUMONIA), tmp_path / "x.npz", retries=3, backoff=0.25, progress=False)
    assert waits == [0.25, 0.5, 1.0]
    assert len(http_server.hits) == 4
    assert "HTTP 500" in caught.value.problem


def test_unreachable_server_raises_download_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url, dest = f"http://127.0.0.1:{port}/pneumoniamnist.npz", tmp_path / "pneumoniamnist.npz"
    with pytest.raises(DownloadError) as caught:
        download_url(url, dest, md5="0" * 32, retries=1, backoff=0.0, progress=False)
    assert url in caught.value.problem
    assert "refused" in caught.value.problem.lower()
    assert str(tmp_path) in caught.value.fix


def test_malformed_url_raises_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="invalid URL"):
        download_url("not a url", tmp_path / "x.npz", progress=False)


# --- download_dataset and the mirror ------------------------------------------------------------------------


def test_dataset_url_is_official_unless_a_mirror_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dataset_url("pneumoniamnist", 64) == get_dataset("pneumoniamnist").remote(64).url
    for base in ("https://mirror.example/medmnist", "https://mirror.example/medmnist/"):
        monkeypatch.setenv(MIRROR_ENV_VAR, base)
        assert dataset_url("PneumoniaMNIST", 64) == "https://mirror.example/medmnist/pneumoniamnist_64.npz"


def test_a_mirror_that_is_not_a_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV_VAR, "mirror.example/medmnist")
    with pytest.raises(ConfigError, match=MIRROR_ENV_VAR):
        dataset_url("pneumoniamnist")


@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_download_dataset_fetches_from_the_mirror_into_a_new_root(
    mirror: FakeServer, tmp_path: Path, flag: str
) -> None:
    root = tmp_path / "does" / "not" / "exist"
    path = download_dataset(flag, root=root, **FAST)
    assert path == root / f"{flag}.npz"
    assert md5sum(path) == official_md5(flag)
    assert mirror.hits == [Hit(f"/{flag}.npz", None)]


def test_a_file_url_mirror_works_for_machines_without_internet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MIRROR_ENV_VAR, SHARED_MEDMNIST.as_uri())  # e.g. a shared folder on a cluster
    path = download_dataset("breastmnist", root=tmp_path, **FAST)
    assert md5sum(path) == official_md5("breastmnist")


def test_download_dataset_skips_a_file_already_there(
    mirror: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    (tmp_path / "pneumoniamnist.npz").write_bytes(pneumonia)
    assert download_dataset("pneumoniamnist", root=tmp_path, **FAST) == tmp_path / "pneumoniamnist.npz"
    assert mirror.hits == []


def test_download_dataset_replaces_a_corrupt_file_and_says_so(
    mirror: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    dest.write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING, logger=download.__name__):
        download_dataset("pneumoniamnist", root=tmp_path, **FAST)
    assert md5sum(dest) == official_md5("pneumoniamnist")
    assert len(mirror.hits) == 1
    assert hashlib.md5(b"half a file").hexdigest() in caplog.text
    (aside,) = tmp_path.glob("pneumoniamnist.npz.corrupt-*")  # the user's file is kept, not deleted
    assert re.fullmatch(r"pneumoniamnist\.npz\.corrupt-\d{8}-\d{6}", aside.name)
    assert aside.read_bytes() == b"half a file" and aside.name in caplog.text


def test_refusing_a_file_that_fails_its_md5_leaves_it_and_writes_nothing(
    mirror: FakeServer, tmp_path: Path
) -> None:
    """What `medbench run` asks for: a file the user put at the official path is not medbench's to replace."""
    dest = tmp_path / "pneumoniamnist.npz"
    dest.write_bytes(b"my own rebuild")
    with pytest.raises(ChecksumError) as caught:
        download_dataset("pneumoniamnist", root=tmp_path, mismatch="refuse", **FAST)
    assert str(dest) in caught.value.problem and "--data-file" in caught.value.fix
    assert "medbench download pneumoniamnist" in caught.value.fix
    assert [p.name for p in tmp_path.iterdir()] == ["pneumoniamnist.npz"]  # no .part, .lock or cache
    assert dest.read_bytes() == b"my own rebuild" and mirror.hits == []


def test_two_processes_downloading_one_file_take_turns(http_server: FakeServer, tmp_path: Path) -> None:
    """The second waits on the first's lock, then finds the verified file (no shared .part, no crash)."""
    http_server.plan(PNEUMONIA, "stall-after:4096")  # the first attempt stalls, so the two overlap
    script = (
        "import sys; from medbench.data.download import download_dataset\n"
        "print(download_dataset('pneumoniamnist', root=sys.argv[1], retries=3, timeout=1.5, backoff=0.0,"
        " progress=False))"
    )
    env = {**os.environ, MIRROR_ENV_VAR: http_server.url("/")}
    command = [sys.executable, "-c", script, str(tmp_path)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = part_path(tmp_path / "pneumoniamnist.npz")
    deadline = time.monotonic() + 60
    while not part.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    assert part.exists(), "the first download never started"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert md5sum(tmp_path / "pneumoniamnist.npz") == official_md5("pneumoniamnist")
    assert [hit.range for hit in http_server.hits] == [None, "bytes=4096-"]  # the second fetched nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pneumoniamnist.npz"]


def test_download_dataset_force_downloads_afresh(
    mirror: FakeServer, tmp_path: Path, pneumonia: bytes
) -> None:
    dest = tmp_path / "pneumoniamnist.npz"
    dest.write_bytes(pneumonia)
    part_path(dest).write_bytes(b"stale")
    download_dataset("pneumoniamnist", root=tmp_path, force=True, **FAST)
    assert ranges(mirror) == [None]  # the stale .part was not resumed
    assert md5sum(dest) == official_md5("pneumoniamnist")


def test_download_dataset_error_points_to_the_official_file(mirror: FakeServer, tmp_path: Path) -> None:
    mirror.plan(PNEUMONIA, "404")
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"half a file")  # not at the final path, but kept aside
    with pytest.raises(DownloadError) as caught:
        download_dataset("pneumoniamnist", root=tmp_path, **FAST)
    err = caught.value
    assert mirror.url(PNEUMONIA) in err.problem
    official = get_dataset("pneumoniamnist").remote(28)
    for expected in (official.url, official.md5, str(tmp_path), "pneumoniamnist.npz", MIRROR_ENV_VAR):
        assert expected in err.fix
    assert not (tmp_path / "pneumoniamnist.npz").exists()
    (aside,) = tmp_path.glob("pneumoniamnist.npz.corrupt-*")  # offline, the user's bytes are still there
    assert aside.read_bytes() == b"half a file"


# --- verify_dataset_file ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "exists", "ok"),
    [(None, False, False), (b"not the file", True, False), ("official", True, True)],
)
def test_verify_dataset_file(
    tmp_path: Path, pneumonia: bytes, content: bytes | str | None, exists: bool, ok: bool
) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    if content is not None:
        path.write_bytes(pneumonia if content == "official" else content)
    result = verify_dataset_file("pneumoniamnist", root=tmp_path)
    assert (result.path, result.exists, result.ok) == (path, exists, ok)
    assert result.md5_expected == official_md5("pneumoniamnist")
    assert result.md5_actual == (md5sum(path) if exists else None)
