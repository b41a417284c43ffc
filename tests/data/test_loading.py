"""Tests for medbench.data.loading: the real shared files, every validation error, and the lazy path."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from medbench.data import data_file as data_file_module
from medbench.data import npz_archive
from medbench.data.loading import load_dataset
from medbench.data.registry import get_dataset
from medbench.errors import (
    ChecksumError,
    DataFileMissingError,
    InvalidDataFileError,
    InvalidSizeError,
    UnknownDatasetError,
)
from medbench.paths import CACHE_ENV_VAR, cache_dir
from tests.data.fixtures import SHARED_MEDMNIST, copy_shared, fake_arrays, make_fake_medmnist, shared_file

PATHMNIST_SUBSET_SHA256 = "21ffbfaab71061cbf2a11a6b4bf41c0f64c0278a7dbf19325d96bb680d1d6b16"


# ---- the real files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_official_files_load_verified(flag: str, tmp_path) -> None:
    shared_file(f"{flag}.npz")
    data = load_dataset(flag, root=SHARED_MEDMNIST, cache_dir=tmp_path)
    info = get_dataset(flag)
    prov = data.provenance
    assert prov.official and prov.verified
    assert prov.md5 == info.remote(28).md5
    assert prov.n_samples == info.n_samples
    assert prov.note == "" and prov.memory_mapped == ()
    train = data["train"]
    assert train.images.shape == (info.n_samples["train"], 28, 28) and train.images.dtype == np.uint8
    assert train.labels.shape == (info.n_samples["train"], 1)


def test_breastmnist_class_counts(tmp_path) -> None:
    shared_file("breastmnist.npz")
    data = load_dataset("breastmnist", root=SHARED_MEDMNIST, cache_dir=tmp_path)
    assert np.bincount(data["train"].labels[:, 0]).tolist() == [147, 399]
    assert np.bincount(data["test"].labels[:, 0]).tolist() == [42, 114]


def test_pathmnist_subset_is_a_custom_file_with_a_note(tmp_path) -> None:
    data = load_dataset("pathmnist", path=shared_file("pathmnist_subset.npz"), cache_dir=tmp_path)
    prov = data.provenance
    assert not prov.official and not prov.verified
    assert prov.sha256 == PATHMNIST_SUBSET_SHA256
    assert "split sizes differ from official (train 17998 vs 89996)" in prov.note
    assert prov.n_samples == {"train": 17998, "val": 10004, "test": 7180}
    assert data["train"].images.shape == (17998, 28, 28, 3)
    assert np.bincount(data["train"].labels[:, 0]).tolist()[:3] == [1873, 1902, 2072]


def test_rebuilt_bloodmnist_is_never_official(tmp_path) -> None:
    data = load_dataset("bloodmnist", path=shared_file("bloodmnist_pbc_recon.npz"), cache_dir=tmp_path)
    assert not data.provenance.official and not data.provenance.verified
    assert "MD5 differs" in data.provenance.note
    assert data.provenance.n_samples == get_dataset("bloodmnist").n_samples  # official splits, other pixels


def test_empty_splits_load(tmp_path) -> None:
    data = load_dataset("bloodmnist", path=shared_file("bloodmnist_train400_genuine.npz"), cache_dir=tmp_path)
    assert len(data["train"]) == 400
    assert len(data["val"]) == len(data["test"]) == 0
    assert data["val"].images.shape == (0, 28, 28, 3)
    assert "val 0 vs 1712" in data.provenance.note


def test_official_file_passed_as_a_path_is_recognised(tmp_path) -> None:
    copy = copy_shared("breastmnist.npz", tmp_path, rename="my_copy.npz")
    prov = load_dataset("breastmnist", path=copy).provenance
    assert prov.official and prov.verified and prov.sha256
    assert "MD5 matches" in prov.note


# ---- missing and damaged files ----------------------------------------------------------------------------


def test_missing_official_file_says_how_to_download(tmp_path) -> None:
    with pytest.raises(DataFileMissingError) as err:
        load_dataset("pathmnist", 64, root=tmp_path)
    assert str(tmp_path / "pathmnist_64.npz") in err.value.problem
    assert "medbench download pathmnist --size 64" in err.value.fix and "--data-file" in err.value.fix


def test_missing_custom_file_names_the_path(tmp_path) -> None:
    with pytest.raises(DataFileMissingError, match="nowhere.npz"):
        load_dataset("pathmnist", path=tmp_path / "nowhere.npz")


def test_truncated_file_is_reported_as_corrupt(tmp_path) -> None:
    path = copy_shared("breastmnist.npz", tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidDataFileError) as err:
        load_dataset("breastmnist", root=tmp_path, cache_dir=tmp_path / "cache")
    assert "not a readable npz" in err.value.problem
    assert "medbench download breastmnist --size 28" in err.value.fix
    assert "breastmnist.npz.corrupt-" in err.value.fix  # the file is moved aside by the download, not deleted


def _damage(path, offset: int = 200_000) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + 64] = bytes(255 - b for b in data[offset : offset + 64])
    path.write_bytes(bytes(data))


def test_damaged_official_file_fails_its_checksum(tmp_path) -> None:
    _damage(copy_shared("breastmnist.npz", tmp_path))
    with pytest.raises(ChecksumError) as err:
        load_dataset("breastmnist", root=tmp_path, cache_dir=tmp_path / "cache")
    assert get_dataset("breastmnist").remote(28).md5 in err.value.problem
    assert "medbench download breastmnist" in err.value.fix


@pytest.mark.parametrize("how", ["custom", "unverified"])
def test_damaged_member_is_reported_as_corrupt(tmp_path, how: str) -> None:
    path = copy_shared("breastmnist.npz", tmp_path)
    _damage(path)
    where = {"path": path} if how == "custom" else {"root": tmp_path, "verify": False}
    with pytest.raises(InvalidDataFileError, match="not a readable npz") as err:
        load_dataset("breastmnist", cache_dir=tmp_path / "cache", **where)
    assert "train_images" in err.value.problem
    assert ("Re-create" if how == "custom" else "medbench download breastmnist") in err.value.fix


# ---- layout checks ----------------------------------------------------------------------------------------

_BROKEN = {
    "missing key": ("pathmnist", 28, {}, ("val_labels",), "missing val_labels"),
    "float images": (
        "pathmnist",
        28,
        {"train_images": np.zeros((24, 28, 28, 3), np.float32)},
        (),
        "train_images has dtype float32, expected uint8",
    ),
    "wrong size": ("pathmnist", 64, {}, (), "It holds 64 px images: load it with size=64"),
    "grey for rgb": (
        "pathmnist",
        28,
        {"test_images": np.zeros((8, 28, 28), np.uint8)},
        (),
        "pathmnist is RGB",
    ),
    "rgb for grey": (
        "breastmnist",
        28,
        {"val_images": np.zeros((8, 28, 28, 3), np.uint8)},
        (),
        "breastmnist is greyscale",
    ),
    "label too large": (
        "pathmnist",
        28,
        {"train_labels": np.full((24, 1), 9, np.uint8)},
        (),
        "train_labels ranges over [9, 9], but pathmnist has 9 classes",
    ),
    "negative label": (
        "breastmnist",
        28,
        {"test_labels": np.full((8, 1), -1, np.int64)},
        (),
        "ranges over [-1, -1]",
    ),
    "non-binary multi-label": (
        "chestmnist",
        28,
        {"val_labels": np.full((8, 14), 2, np.uint8)},
        (),
        "must hold 0/1 flags",
    ),
    "length mismatch": (
        "pathmnist",
        28,
        {"train_labels": np.zeros((23, 1), np.uint8)},
        (),
        "train_images has 24 images but train_labels has 23 labels",
    ),
    "flat labels": ("pathmnist", 28, {"val_labels": np.zeros(8, np.uint8)}, (), "labels.reshape(-1, 1)"),
    "float labels": (
        "pathmnist",
        28,
        {"val_labels": np.zeros((8, 1), np.float32)},
        (),
        "labels must be integers",
    ),
    "multi-label width": (
        "chestmnist",
        28,
        {"test_labels": np.zeros((8, 13), np.uint8)},
        (),
        "chestmnist needs (N, 14)",
    ),
}


@pytest.mark.parametrize("case", list(_BROKEN))
def test_layout_errors_name_the_file_the_key_and_the_fix(tmp_path, case: str) -> None:
    flag, size, override, drop, message = _BROKEN[case]
    path = make_fake_medmnist(tmp_path / "custom.npz", flag, size, override=override, drop=drop)
    with pytest.raises(InvalidDataFileError) as err:
        load_dataset(flag, path=path, cache_dir=tmp_path / "cache")
    assert message in err.value.problem
    assert str(path) in err.value.problem
    assert "official MedMNIST layout" in err.value.fix


def test_official_location_with_other_split_sizes_is_an_error(tmp_path) -> None:
    make_fake_medmnist(tmp_path, "breastmnist")
    with pytest.raises(ChecksumError):  # verify=True: the MD5 already tells
        load_dataset("breastmnist", root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(InvalidDataFileError, match="split sizes differ") as err:
        load_dataset("breastmnist", root=tmp_path, verify=False, cache_dir=tmp_path / "cache")
    assert "--data-file" in err.value.fix


def test_unverified_official_location_is_presumed_official(tmp_path) -> None:
    make_fake_medmnist(tmp_path, "breastmnist", n_per_split="official")
    prov = load_dataset("breastmnist", root=tmp_path, verify=False, cache_dir=tmp_path / "cache").provenance
    assert prov.official and not prov.verified and prov.md5 is None
    assert "not checked" in prov.note


def test_custom_file_with_official_sizes_has_no_size_note(tmp_path) -> None:
    path = make_fake_medmnist(tmp_path / "mine.npz", "breastmnist", n_per_split="official")
    prov = load_dataset("breastmnist", path=path).provenance
    assert not prov.official and "split sizes" not in prov.note and len(prov.sha256) == 64


def test_multi_label_and_uncompressed_files_load(tmp_path) -> None:
    path = make_fake_medmnist(tmp_path / "chest.npz", "chestmnist", 64, compressed=False)
    data = load_dataset("chestmnist", 64, path=path)
    assert data.multi_label and data["train"].labels.shape == (24, 14)
    np.testing.assert_array_equal(data["val"].images, fake_arrays("chestmnist", 64)["val_images"])


def test_unknown_dataset_and_size(tmp_path) -> None:
    with pytest.raises(UnknownDatasetError, match="pathmnist"):
        load_dataset("pathmnst", root=tmp_path)
    with pytest.raises(InvalidSizeError):
        load_dataset("pathmnist", 32, root=tmp_path)


def test_provenance_is_json_ready(tmp_path) -> None:
    path = make_fake_medmnist(tmp_path, "dermamnist")
    record = json.loads(json.dumps(load_dataset("dermamnist", path=path).provenance.to_dict()))
    assert record["official"] is False and record["n_samples"] == {"train": 24, "val": 8, "test": 8}


# ---- large files: the lazy path and the caches ------------------------------------------------------------


def test_large_members_are_unpacked_and_memory_mapped(tmp_path) -> None:
    path = make_fake_medmnist(tmp_path, "pathmnist", n_per_split={"train": 64})
    eager = load_dataset("pathmnist", path=path)
    lazy = load_dataset("pathmnist", path=path, mmap_threshold=10_000)  # images > 10 kB, labels below
    images = lazy["train"].images
    assert isinstance(images, np.memmap) and not isinstance(lazy["train"].labels, np.memmap)
    assert lazy.provenance.memory_mapped == ("train_images", "val_images", "test_images")
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(lazy[split].images, eager[split].images)
    folder = cache_dir() / f"pathmnist-{lazy.provenance.sha256[:16]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pathmnist.npz"]  # nothing beside the data
    assert sorted(p.name for p in folder.iterdir()) == [
        "test_images.npy",
        "train_images.npy",
        "val_images.npy",
    ]
    assert os.path.samefile(images.filename, folder / "train_images.npy")


def test_unpacked_members_are_reused_and_repaired(tmp_path, monkeypatch) -> None:
    path = make_fake_medmnist(tmp_path, "pathmnist")
    first = load_dataset("pathmnist", path=path, mmap_threshold=0)
    calls = []
    real_unpack = npz_archive.unpack_member
    monkeypatch.setattr(npz_archive, "unpack_member", lambda *a: calls.append(a[1]) or real_unpack(*a))
    load_dataset("pathmnist", path=path, mmap_threshold=0)
    assert calls == []
    cached = cache_dir() / f"pathmnist-{first.provenance.sha256[:16]}" / "val_images.npy"
    del first
    cached.write_bytes(cached.read_bytes()[:100])  # a damaged cache file is unpacked again
    again = load_dataset("pathmnist", path=path, mmap_threshold=0)
    assert calls == ["val_images.npy"]
    np.testing.assert_array_equal(again["val"].images, fake_arrays("pathmnist")["val_images"])


def test_unpacking_streams_in_small_chunks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(npz_archive, "_COPY_CHUNK", 1000)  # many chunks, and a member not a multiple of them
    path = make_fake_medmnist(tmp_path, "octmnist", 64)
    data = load_dataset("octmnist", 64, path=path, mmap_threshold=0)
    np.testing.assert_array_equal(data["train"].images, fake_arrays("octmnist", 64)["train_images"])
    assert not list(tmp_path.rglob("*.part"))


def test_hashes_come_from_the_sidecar_until_the_file_changes(tmp_path, monkeypatch) -> None:
    path = make_fake_medmnist(tmp_path, "pathmnist")
    calls = []
    real_hash = data_file_module.hash_file
    monkeypatch.setattr(data_file_module, "hash_file", lambda p: calls.append(p) or real_hash(p))
    first = load_dataset("pathmnist", path=path).provenance
    second = load_dataset("pathmnist", path=path).provenance
    assert len(calls) == 1 and (first.md5, first.sha256) == (second.md5, second.sha256)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_dataset("pathmnist", path=path)
    assert len(calls) == 2


def test_cache_dir_defaults(tmp_path, monkeypatch) -> None:
    """medbench's own folder, never one beside the data (which may be read-only, and is the user's)."""
    for var in (CACHE_ENV_VAR, "MEDBENCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    data_file = tmp_path / "data" / "x.npz"
    assert data_file_module.default_cache_dir(data_file) == Path("~/.cache/medbench").expanduser()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_file_module.default_cache_dir(data_file) == tmp_path / "xdg" / "medbench"
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    assert data_file_module.default_cache_dir(data_file) == tmp_path / "home" / "cache"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env"))
    assert data_file_module.default_cache_dir(data_file) == tmp_path / "env"


@pytest.mark.parametrize("mode", [0o755, 0o555], ids=["writable", "read-only"])
def test_nothing_is_written_beside_the_data(tmp_path, monkeypatch, mode) -> None:
    """Large members are unpacked and hashes cached in medbench's cache under MEDBENCH_HOME, never in the
    user's data folder, whether it could be written (it used to get a .medbench-cache) or not (../shared)."""
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared"
    shared.mkdir()
    path = make_fake_medmnist(shared, "pathmnist")
    shared.chmod(mode)
    try:
        data = load_dataset("pathmnist", path=path, mmap_threshold=0)
        again = load_dataset("pathmnist", path=path, mmap_threshold=0)
        assert isinstance(data["train"].images, np.memmap)
        assert data.provenance.sha256 == again.provenance.sha256
        assert sorted(p.name for p in shared.iterdir()) == ["pathmnist.npz"]
        cache = tmp_path / "home" / "cache"
        assert list(cache.glob("pathmnist.npz-*.hashes.json"))
        assert Path(data["train"].images.filename).parent.parent == cache
    finally:
        shared.chmod(0o755)


def test_unpacking_a_large_member_keeps_memory_bounded(tmp_path, monkeypatch) -> None:
    n = 700  # 700 RGB images of 64 px: an 8.6 MB member, deflated
    path = make_fake_medmnist(tmp_path, "pathmnist", 64, n_per_split={"train": n})
    monkeypatch.setattr(npz_archive, "_COPY_CHUNK", 256 * 1024)
    monkeypatch.setattr(data_file_module, "_HASH_CHUNK", 256 * 1024)
    tracemalloc.start()
    try:
        data = load_dataset("pathmnist", 64, path=path, mmap_threshold=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data["train"].images.nbytes > 8 * 2**20
    assert peak < 3 * 2**20  # a few chunks, never the member
