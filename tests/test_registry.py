"""The dataset registry holds the official MedMNIST v3 facts and rejects what is not there."""

import pytest

from medbench.data import registry
from medbench.errors import InvalidSizeError, UnknownDatasetError

ALL_2D = [
    "pathmnist",
    "chestmnist",
    "dermamnist",
    "octmnist",
    "pneumoniamnist",
    "retinamnist",
    "breastmnist",
    "bloodmnist",
    "tissuemnist",
    "organamnist",
    "organcmnist",
    "organsmnist",
]


def test_every_2d_dataset_is_registered_with_all_four_sizes():
    assert registry.list_datasets()[:12] == ALL_2D
    for flag in ALL_2D:
        info = registry.get_dataset(flag)
        assert info.sizes == (28, 64, 128, 224)
        assert all(len(info.remote(s).md5) == 32 for s in info.sizes)
        assert set(info.n_samples) == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("flag", "task", "n_classes", "channels", "train"),
    [
        ("pathmnist", registry.Task.MULTI_CLASS, 9, 3, 89996),
        ("chestmnist", registry.Task.MULTI_LABEL, 14, 1, 78468),
        ("retinamnist", registry.Task.ORDINAL, 5, 3, 1080),
        ("breastmnist", registry.Task.BINARY, 2, 1, 546),
        ("bloodmnist", registry.Task.MULTI_CLASS, 8, 3, 11959),
    ],
)
def test_official_facts(flag, task, n_classes, channels, train):
    info = registry.get_dataset(flag)
    assert (info.task, info.n_classes, info.n_channels, info.n_samples["train"]) == (
        task,
        n_classes,
        channels,
        train,
    )


def test_official_md5s_of_the_files_in_shared_match_the_registry():
    assert registry.get_dataset("pneumoniamnist").remote(28).md5 == "28209eda62fecd6e6a2d98b1501bb15f"
    assert registry.get_dataset("breastmnist").remote(28).md5 == "750601b1f35ba3300ea97c75c52ff8f6"
    assert registry.get_dataset("pathmnist").remote(28).md5 == "a8b06965200029087d5bd730944a56c1"


def test_file_names_follow_the_official_convention():
    info = registry.get_dataset("dermamnist")
    assert info.filename(28) == "dermamnist.npz"
    assert info.filename(224) == "dermamnist_224.npz"
    assert info.remote(64).url.endswith("dermamnist_64.npz?download=1")


def test_lookup_is_case_insensitive_and_suggests_close_names():
    assert registry.get_dataset("PathMNIST").flag == "pathmnist"
    with pytest.raises(UnknownDatasetError) as err:
        registry.get_dataset("dermamnst")
    assert "dermamnist" in str(err.value)
    assert "medbench datasets" in err.value.fix


def test_bad_size_names_the_valid_ones():
    with pytest.raises(InvalidSizeError, match="28, 64, 128, 224"):
        registry.get_dataset("bloodmnist").filename(32)


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(registry.ROOT_ENV_VAR, raising=False)
    assert registry.data_root().name == ".medmnist"
    monkeypatch.setenv(registry.ROOT_ENV_VAR, str(tmp_path / "env"))
    assert registry.data_root() == tmp_path / "env"
    assert registry.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert registry.local_path("bloodmnist", 64) == tmp_path / "env" / "bloodmnist_64.npz"


def test_variants_register_beside_the_official_datasets():
    base = registry.get_dataset("breastmnist")
    variant = registry.DatasetInfo(
        flag="breastmnist_test_variant",
        title="Variant",
        task=base.task,
        labels=base.labels,
        n_channels=1,
        n_samples=dict(base.n_samples),
        license=base.license,
        description="",
        files={28: registry.RemoteFile("http://example.invalid/v.npz", "0" * 32)},
        base="breastmnist",
    )
    try:
        registry.register_dataset(variant)
        assert registry.get_dataset("breastmnist_test_variant").base == "breastmnist"
        with pytest.raises(InvalidSizeError):
            variant.filename(64)
        with pytest.raises(ValueError, match="already registered"):
            registry.register_dataset(variant)
    finally:
        registry._REGISTRY.pop("breastmnist_test_variant", None)


def test_dermamnist_variants_are_registered_with_their_own_files():
    for flag, train in (("dermamnist_c", 8215), ("dermamnist_e", 10015)):
        info = registry.get_dataset(flag)
        assert info.base == "dermamnist" and info.sizes == (28, 224)
        assert info.labels == registry.get_dataset("dermamnist").labels
        assert info.n_samples["train"] == train and info.license == "CC BY-NC 4.0"
        assert "11101337" in info.remote(224).url
    assert registry.get_dataset("dermamnist_c").filename(28) == "dermamnist_corrected_28.npz"
    with pytest.raises(InvalidSizeError, match="28, 224"):
        registry.get_dataset("dermamnist_e").filename(64)
