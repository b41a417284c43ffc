"""The data commands as a user runs them: a real process, real exit codes, one readable line on mistakes."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "medmnist"


def medbench(*args: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MEDBENCH_DATA_ROOT": str(root), "COLUMNS": "160", **env}
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "medmnist"
    root.mkdir()
    shutil.copy(SHARED / "breastmnist.npz", root / "breastmnist.npz")
    return root


def test_datasets_lists_all_twelve_and_marks_what_is_on_disk(root):
    result = medbench("datasets", "--verify", root=root)
    assert result.returncode == 0, result.stderr
    for flag in ("pathmnist", "chestmnist", "organsmnist", "breastmnist"):
        assert flag in result.stdout
    breast = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("breastmnist"))
    assert "✓" in breast and "CC BY 4.0" in breast
    derma = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("dermamnist"))
    assert "CC BY-NC 4.0" in derma and "✓" not in derma


def test_info_shows_classes_and_official_files(root):
    result = medbench("info", "BreastMNIST", root=root)
    assert result.returncode == 0
    assert "malignant" in result.stdout and "750601b1f35ba3300ea97c75c52ff8f6" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("info", "bloodmnst"), "Did you mean bloodmnist"),
        (("download", "pathmnist", "--size", "32"), "Choose one of 28, 64, 128, 224"),
        (("verify", "nosuchmnist"), "Unknown dataset"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(root, args, expected):
    result = medbench(*args, root=root)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_passes_on_the_official_file_and_fails_on_a_corrupt_one(root):
    ok = medbench("verify", root=root)
    assert ok.returncode == 0 and "ok" in ok.stdout
    data = bytearray((root / "breastmnist.npz").read_bytes())
    data[1000] ^= 0xFF
    (root / "breastmnist.npz").write_bytes(bytes(data))
    bad = medbench("verify", root=root)
    assert bad.returncode == 1
    assert "MD5 mismatch" in bad.stdout and hashlib.md5(bytes(data)).hexdigest()[:10] in bad.stdout


def test_verify_of_a_missing_named_file_fails(root):
    result = medbench("verify", "pneumoniamnist", "--size", "28", root=root)
    assert result.returncode == 1 and "missing" in result.stdout


def test_offline_download_says_where_to_put_the_file(root):
    result = medbench("download", "pneumoniamnist", root=root, MEDBENCH_MIRROR="http://127.0.0.1:9/")
    assert result.returncode == 2
    assert "28209eda62fecd6e6a2d98b1501bb15f" in result.stderr and str(root) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "pneumoniamnist.npz").exists()
