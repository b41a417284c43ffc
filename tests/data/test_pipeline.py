"""Tests for medbench.data.pipeline: determinism (across processes too), coverage, formats, prefetching."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from medbench.data.balanced_sampler import BalancedSampler
from medbench.data.loading import Split, load_dataset
from medbench.data.pipeline import BatchPipeline, make_pipeline
from medbench.data.prefetch import THREAD_PREFIX, prefetched
from medbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Augment, Normalization, draw_augment_params
from medbench.errors import ConfigError
from tests.data.fixtures import make_fake_medmnist

AUG = Augment(hflip=True, vflip=True, crop_padding=2, rotate_degrees=15)


def indexed_split(n: int = 50, *, side: int = 6, channels: int = 1, name: str = "train") -> Split:
    """Images that carry their own index (pixels [0, 0] and [0, 1]), labels index % 5."""
    shape = (n, side, side) if channels == 1 else (n, side, side, channels)
    images = np.random.default_rng(n).integers(0, 256, shape, dtype=np.uint8)
    images[:, 0, 0] = (np.arange(n) % 256)[:, None] if channels > 1 else np.arange(n) % 256
    images[:, 0, 1] = (np.arange(n) // 256)[:, None] if channels > 1 else np.arange(n) // 256
    return Split(name, images, (np.arange(n) % 5).reshape(-1, 1).astype(np.uint8))


def served_indices(batch_images: np.ndarray) -> np.ndarray:
    """The indices written by indexed_split, read back from batches normalised with "none"."""
    pixels = np.rint(batch_images[:, 0, :2, 0] * 255).astype(int)
    return pixels[:, 0] + 256 * pixels[:, 1]


def epoch_digest(pipeline: BatchPipeline, epoch: int) -> str:
    digest = hashlib.sha256()
    for images, labels in pipeline.epoch(epoch):
        digest.update(images.tobytes())
        digest.update(labels.tobytes())
    return digest.hexdigest()


def _same(a: list, b: list) -> bool:
    """Two lists of (images, labels) batches hold identical arrays."""
    if len(a) != len(b):
        return False
    return all(np.array_equal(x, y) for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))


# ---- determinism ------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_batches_in_two_pipelines() -> None:
    split = indexed_split(side=16, channels=3)
    a, b = (BatchPipeline(split, batch_size=8, shuffle=True, seed=7, augment=AUG) for _ in range(2))
    assert _same(list(a.epoch(3)), list(b.epoch(3)))
    c = BatchPipeline(split, batch_size=8, shuffle=True, seed=8, augment=AUG)
    assert not _same(list(a.epoch(3)), list(c.epoch(3)))


def test_batches_are_identical_in_another_process(tmp_path: Path) -> None:
    path = make_fake_medmnist(tmp_path / "blood.npz", "bloodmnist", n_per_split={"train": 40})
    settings = {"batch_size": 16, "seed": 3, "resize_to": 56, "augment": AUG, "normalize": "dataset"}
    code = textwrap.dedent(
        f"""
        import hashlib, json, sys
        from medbench.data.loading import load_dataset
        from medbench.data.pipeline import make_pipeline
        from medbench.data.transforms import Augment
        settings = json.loads(sys.argv[1])
        settings["augment"] = Augment(**settings["augment"])
        data = load_dataset("bloodmnist", path={str(path)!r}, cache_dir={str(tmp_path / "cache")!r})
        pipeline = make_pipeline(data, "train", **settings)
        digest = hashlib.sha256()
        for epoch in (0, 1):
            for images, labels in pipeline.epoch(epoch):
                digest.update(images.tobytes()); digest.update(labels.tobytes())
        print(digest.hexdigest())
        """
    )
    argument = json.dumps({**settings, "augment": AUG.to_dict()})
    child = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True, check=True)
    data = load_dataset("bloodmnist", path=path, cache_dir=tmp_path / "cache")
    pipeline = make_pipeline(data, "train", **settings)
    digest = hashlib.sha256()
    for epoch in (0, 1):
        for images, labels in pipeline.epoch(epoch):
            digest.update(images.tobytes())
            digest.update(labels.tobytes())
    assert child.stdout.strip() == digest.hexdigest()


def test_epochs_have_different_orders_and_repeat_exactly() -> None:
    pipeline = BatchPipeline(indexed_split(), batch_size=8, shuffle=True, seed=0)
    assert not np.array_equal(pipeline.order(0), pipeline.order(1))
    np.testing.assert_array_equal(pipeline.order(1), pipeline.order(1))
    assert epoch_digest(pipeline, 1) == epoch_digest(pipeline, 1) != epoch_digest(pipeline, 2)


def test_numpy_streams_are_pinned() -> None:
    # If numpy ever changes these streams, runs made with different numpy versions stop being comparable.
    pipeline = BatchPipeline(indexed_split(10), batch_size=4, shuffle=True, seed=0)
    assert pipeline.order(0).tolist() == [5, 1, 6, 3, 4, 8, 9, 7, 2, 0]
    params = draw_augment_params(Augment(hflip=True, rotate_degrees=15, crop_padding=2), 4, (0, 0, 2, 0))
    assert params.hflip.tolist() == [True, False, False, True]
    assert params.shift_y.tolist() == [0, -1, 0, -2]
    np.testing.assert_allclose(params.angles, [4.3070, -6.7213, -5.6503, -5.8286], atol=1e-4)


def test_every_sample_served_once_per_epoch() -> None:
    split = indexed_split(50)
    pipeline = BatchPipeline(split, batch_size=8, shuffle=True, seed=1, normalize="none")
    batches = list(pipeline.epoch(4))
    assert [len(images) for images, _ in batches] == [8] * 6 + [2]
    served = np.concatenate([served_indices(images) for images, _ in batches])
    np.testing.assert_array_equal(served, pipeline.order(4))
    assert sorted(served.tolist()) == list(range(50))
    labels = np.concatenate([labels for _, labels in batches])
    np.testing.assert_array_equal(labels, served % 5)


def test_without_shuffle_batches_follow_file_order() -> None:
    pipeline = BatchPipeline(indexed_split(20), batch_size=6, normalize="none")
    served = np.concatenate([served_indices(images) for images, _ in pipeline])
    np.testing.assert_array_equal(served, np.arange(20))


def test_len_and_drop_last() -> None:
    split = indexed_split(50)
    assert len(BatchPipeline(split, batch_size=8)) == 7
    dropping = BatchPipeline(split, batch_size=8, shuffle=True, drop_last=True)
    assert len(dropping) == 6
    assert [len(labels) for _, labels in dropping.epoch(0)] == [8] * 6
    assert len(BatchPipeline(split, batch_size=64, drop_last=True)) == 0


def test_random_access_batch_equals_the_iterated_one() -> None:
    pipeline = BatchPipeline(indexed_split(side=8, channels=3), batch_size=8, shuffle=True, augment=AUG)
    third = list(pipeline.epoch(2))[3]
    assert _same([third], [pipeline.batch(2, 3)])
    with pytest.raises(IndexError):
        pipeline.batch(0, len(pipeline))


# ---- formats and values -----------------------------------------------------------------------------------


def test_image_and_label_formats(tmp_path: Path) -> None:
    single = load_dataset("breastmnist", path=make_fake_medmnist(tmp_path / "b.npz", "breastmnist"))
    images, labels = next(iter(make_pipeline(single, "val", batch_size=5)))
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.float32 and images.flags.c_contiguous
    assert labels.shape == (5,) and labels.dtype == np.int64
    multi = load_dataset("chestmnist", path=make_fake_medmnist(tmp_path / "c.npz", "chestmnist"))
    images, labels = next(iter(make_pipeline(multi, "test", batch_size=5)))
    assert labels.shape == (5, 14) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels, multi["test"].labels[:5])


def test_official_normalisation_values() -> None:
    images = np.array([0, 255, 51, 128], np.uint8).reshape(4, 1, 1)
    split = Split("val", images, np.zeros((4, 1), np.uint8))
    out, _ = next(iter(BatchPipeline(split, batch_size=4)))
    np.testing.assert_allclose(out.ravel(), [-1, 1, 51 / 127.5 - 1, 128 / 127.5 - 1], atol=1e-6)
    out, _ = next(iter(BatchPipeline(split, batch_size=4, normalize="none")))
    np.testing.assert_allclose(out.ravel(), [0, 1, 0.2, 128 / 255], atol=1e-7)


def test_dataset_normalisation_standardises_the_train_split(tmp_path: Path) -> None:
    data = load_dataset("pathmnist", path=make_fake_medmnist(tmp_path / "p.npz", "pathmnist"))
    images = np.concatenate([x for x, _ in make_pipeline(data, "train", normalize="dataset", batch_size=7)])
    np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(images.std(axis=(0, 1, 2)), 1, atol=1e-5)
    val = make_pipeline(data, "val", normalize="dataset")
    assert val.normalization == Normalization.from_images(data["train"].images)  # train statistics


def test_to_rgb_repeats_the_grey_channel() -> None:
    split = indexed_split(side=8, channels=1, name="val")
    grey, _ = next(iter(BatchPipeline(split, batch_size=4)))
    rgb, _ = next(iter(BatchPipeline(split, batch_size=4, to_rgb=True)))
    assert rgb.shape == (4, 8, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], grey[..., 0])
    colour = BatchPipeline(indexed_split(side=8, channels=3), batch_size=4, to_rgb=True)
    assert next(iter(colour))[0].shape == (4, 8, 8, 3)


def test_resize_in_the_pipeline_is_nearest_upsampling() -> None:
    split = indexed_split(side=7, channels=3)
    small, _ = next(iter(BatchPipeline(split, batch_size=4)))
    big, _ = next(iter(BatchPipeline(split, batch_size=4, resize_to=28)))
    np.testing.assert_array_equal(big, np.repeat(np.repeat(small, 4, axis=1), 4, axis=2))
    assert BatchPipeline(split, resize_to=28, to_rgb=True).image_shape == (28, 28, 3)


def test_augmentation_is_seeded_and_changes_images() -> None:
    split = indexed_split(side=12, channels=3)
    plain = list(BatchPipeline(split, batch_size=10, shuffle=True).epoch(0))
    a = list(BatchPipeline(split, batch_size=10, shuffle=True, augment=AUG).epoch(0))
    b = list(BatchPipeline(split, batch_size=10, shuffle=True, augment=AUG).epoch(0))
    c = list(BatchPipeline(split, batch_size=10, shuffle=True, augment=AUG).epoch(1))
    assert _same(a, b) and not _same(a, plain)
    assert not np.array_equal(a[0][0], c[0][0])
    for (_, labels), (_, plain_labels) in zip(a, plain, strict=True):  # same samples: only pixels change
        np.testing.assert_array_equal(labels, plain_labels)


def test_horizontal_flips_flip_the_drawn_images() -> None:
    split = indexed_split(40, side=10, channels=3)
    plain = BatchPipeline(split, batch_size=40)
    flipping = BatchPipeline(split, batch_size=40, augment=Augment(hflip=True))
    (x, _), (y, _) = plain.batch(0, 0), flipping.batch(0, 0)
    drawn = draw_augment_params(Augment(hflip=True), 40, (0, 0, 2, 0)).hflip
    assert 0 < drawn.sum() < 40
    np.testing.assert_array_equal(y[drawn], x[drawn][:, :, ::-1])
    np.testing.assert_array_equal(y[~drawn], x[~drawn])


def test_augmentation_only_on_train(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="val"):
        BatchPipeline(indexed_split(name="val"), augment=AUG)
    data = load_dataset("pathmnist", path=make_fake_medmnist(tmp_path / "p.npz", "pathmnist"))
    with pytest.raises(ConfigError, match="test"):
        make_pipeline(data, "test", augment=AUG)
    assert BatchPipeline(indexed_split(name="val"), augment=Augment()).augment is None  # nothing enabled


def test_memory_mapped_split_gives_the_same_batches(tmp_path: Path) -> None:
    path = make_fake_medmnist(tmp_path, "pathmnist", n_per_split={"train": 30})
    eager = make_pipeline(load_dataset("pathmnist", path=path), batch_size=8, augment=AUG)
    lazy_data = load_dataset("pathmnist", path=path, mmap_threshold=0)
    assert isinstance(lazy_data["train"].images, np.memmap)
    lazy = make_pipeline(lazy_data, batch_size=8, augment=AUG)
    assert _same(list(eager.epoch(1)), list(lazy.epoch(1)))


def test_empty_split_has_no_batches() -> None:
    split = Split("val", np.zeros((0, 28, 28, 3), np.uint8), np.zeros((0, 1), np.uint8))
    pipeline = BatchPipeline(split)
    assert len(pipeline) == 0 and list(pipeline) == []


def test_describe_is_json_ready() -> None:
    pipeline = BatchPipeline(indexed_split(), resize_to=24, augment=AUG, normalize="none")
    record = json.loads(json.dumps(pipeline.describe()))
    assert record["augment"]["rotate_degrees"] == 15 and record["image_shape"] == [24, 24, 1]


@pytest.mark.parametrize(
    "settings",
    [
        {"batch_size": 0},
        {"seed": -1},
        {"seed": 2**32},
        {"normalize": "imagenette"},
        {"sampler": "oversample"},
        {"prefetch": -1},
        {"workers": 0},
    ],
)
def test_bad_settings_are_config_errors(settings: dict) -> None:
    with pytest.raises(ConfigError):
        BatchPipeline(indexed_split(), **settings)


def test_normalisation_must_fit_the_channels() -> None:
    rgb_stats = Normalization((0.1, 0.2, 0.3), (0.2, 0.2, 0.2))
    with pytest.raises(ConfigError, match="3 channels"):
        BatchPipeline(indexed_split(channels=1), normalize=rgb_stats)
    assert BatchPipeline(indexed_split(channels=1), normalize=rgb_stats, to_rgb=True).channels == 3


# ---- ImageNet normalisation -------------------------------------------------------------------------------


def test_imagenet_normalisation_of_grey_images_repeated_to_rgb() -> None:
    images = np.array([0, 255, 51, 128], np.uint8).reshape(4, 1, 1)
    split = Split("val", images, np.zeros((4, 1), np.uint8))
    pipeline = BatchPipeline(split, batch_size=4, normalize="imagenet", to_rgb=True)
    out, _ = next(iter(pipeline))
    assert out.shape == (4, 1, 1, 3) and pipeline.normalization == Normalization.imagenet()
    grey = np.array([0, 255, 51, 128]) / 255
    for c in range(3):
        expected = (grey - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(out[:, 0, 0, c], expected, rtol=1e-6, atol=1e-6)
    assert out[0, 0, 0].tolist() == pytest.approx([-2.1179039, -2.0357143, -1.8044444], abs=1e-6)


def test_imagenet_normalisation_on_grey_images_asks_for_to_rgb() -> None:
    with pytest.raises(ConfigError, match=r"grey \(1 channel\).*data\.to_rgb=true"):
        BatchPipeline(indexed_split(channels=1), normalize="imagenet")


def test_imagenet_normalisation_of_an_rgb_dataset(tmp_path: Path) -> None:
    data = load_dataset("pathmnist", path=make_fake_medmnist(tmp_path / "p.npz", "pathmnist"))
    images, _ = next(iter(make_pipeline(data, "val", batch_size=8, normalize="imagenet")))
    raw = data["val"].images[:8].astype(np.float64) / 255
    expected = (raw - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)


def test_imagenet_normalisation_round_trips_through_the_checkpoint(tmp_path: Path) -> None:
    from medbench.checkpoint import LoadedCheckpoint
    from medbench.config import DataConfig, RunConfig
    from medbench.training import CHECKPOINT_META, make_batches, normalization_for
    from medbench.training.run_folder import write_checkpoint_meta

    path = make_fake_medmnist(tmp_path / "pneumonia.npz", "pneumoniamnist")
    config = RunConfig(
        framework="torch",
        model="simple_cnn",
        data=DataConfig(dataset="pneumoniamnist", data_file=path, normalize="imagenet", to_rgb=True),
    )
    data = load_dataset("pneumoniamnist", path=path)
    trained_with = normalization_for(config, data)
    write_checkpoint_meta(config, data, trained_with, tmp_path, "torch", run_id="round-trip")
    meta = json.loads((tmp_path / CHECKPOINT_META).read_text())
    checkpoint = LoadedCheckpoint(tmp_path, meta, config, framework=None, model=None)
    restored = BatchPipeline(data["test"], normalize=checkpoint.normalization(), to_rgb=True)
    assert restored.normalization == Normalization.imagenet()
    training = make_batches(config, data, "test", normalization=trained_with, train=False)
    assert _same(list(training), list(restored))


# ---- class-balanced sampling ------------------------------------------------------------------------------

SKEWED_COUNTS = (700, 200, 90, 10)  # one dominant class, as DermaMNIST's nevi, and a rare one


def skewed_split(name: str = "train") -> Split:
    """indexed_split's images with labels 0..3 in SKEWED_COUNTS proportions, interleaved in the file."""
    split = indexed_split(sum(SKEWED_COUNTS), side=4, name=name)
    labels = np.repeat(np.arange(len(SKEWED_COUNTS)), SKEWED_COUNTS)
    labels = labels[np.random.default_rng(0).permutation(len(labels))]
    return Split(name, split.images, labels.reshape(-1, 1).astype(np.uint8))


def test_a_balanced_epoch_draws_every_class_about_equally() -> None:
    split = skewed_split()
    labels = split.labels[:, 0]
    balanced = BatchPipeline(split, batch_size=64, shuffle=True, sampler="balanced", seed=5)
    drawn = np.concatenate([balanced.order(epoch) for epoch in range(5)])
    assert len(balanced.order(0)) == balanced.n_samples == 1000 and len(balanced) == 16
    shares = np.bincount(labels[drawn], minlength=4) / len(drawn)
    np.testing.assert_allclose(shares, 0.25, atol=0.03)  # binomial sd over 5000 draws: 0.006
    shuffled = BatchPipeline(split, batch_size=64, shuffle=True, seed=5)
    assert np.bincount(labels[shuffled.order(0)]).tolist() == list(SKEWED_COUNTS)
    rare = np.flatnonzero(labels == 3)
    assert np.isin(drawn, rare).sum() > 10 * len(rare) // 2  # rare images repeat, about 25 times each


def test_balanced_draws_are_valid_served_and_labelled() -> None:
    split = skewed_split()
    pipeline = BatchPipeline(split, batch_size=64, shuffle=True, sampler="balanced", normalize="none")
    batches = list(pipeline.epoch(2))
    served = np.concatenate([served_indices(images) for images, _ in batches])
    np.testing.assert_array_equal(served, pipeline.order(2))
    assert served.min() >= 0 and served.max() < len(split)
    assert len(np.unique(served)) < len(served)  # with replacement
    labels = np.concatenate([labels for _, labels in batches])
    np.testing.assert_array_equal(labels, split.labels[served, 0])


def test_balanced_order_is_seeded_per_epoch() -> None:
    split = skewed_split()
    a, b = (BatchPipeline(split, shuffle=True, sampler="balanced", seed=3) for _ in range(2))
    np.testing.assert_array_equal(a.order(4), b.order(4))
    assert not np.array_equal(a.order(4), a.order(5))
    other_seed = BatchPipeline(split, shuffle=True, sampler="balanced", seed=4)
    assert not np.array_equal(a.order(4), other_seed.order(4))
    assert epoch_digest(a, 1) == epoch_digest(b, 1)
    # The balanced stream is pinned like the shuffle's (tests above): numpy must keep drawing these.
    small = Split("train", indexed_split(10).images, np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 2]).reshape(-1, 1))
    pinned = BatchPipeline(small, shuffle=True, sampler="balanced").order(0)
    assert pinned.tolist() == [9, 9, 9, 7, 8, 7, 9, 9, 1, 7]


def test_balanced_weights_are_the_inverse_class_counts() -> None:
    labels = np.array([2, 0, 0, 2, 0, 5, 0])  # classes 1, 3 and 4 absent: never drawn, no weight
    sampler = BalancedSampler.from_labels(labels)
    weights = 1.0 / np.bincount(labels)[labels]  # WeightedRandomSampler's weights, normalised below
    np.testing.assert_allclose(sampler.probabilities(), weights / weights.sum())
    assert set(sampler.draw(np.random.default_rng(0)).tolist()) <= set(range(len(labels)))


def test_the_default_sampler_is_the_unchanged_shuffle(tmp_path: Path) -> None:
    split = indexed_split(10)
    explicit = BatchPipeline(split, shuffle=True, sampler="shuffle")
    assert explicit.order(0).tolist() == [5, 1, 6, 3, 4, 8, 9, 7, 2, 0]
    data = load_dataset("bloodmnist", path=make_fake_medmnist(tmp_path / "b.npz", "bloodmnist"))
    default = make_pipeline(data, "train", seed=2)
    balanced = make_pipeline(data, "train", seed=2, sampler="balanced")
    assert default.sampler == "shuffle" and sorted(default.order(0).tolist()) == list(range(24))
    assert balanced.sampler == "balanced" and balanced.describe()["sampler"] == "balanced"
    assert not np.array_equal(balanced.order(0), default.order(0))


def test_balanced_sampling_is_only_for_the_shuffled_train_split(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'val'"):
        BatchPipeline(skewed_split("val"), shuffle=True, sampler="balanced")
    with pytest.raises(ConfigError, match="unshuffled 'train'"):
        BatchPipeline(skewed_split(), sampler="balanced")
    data = load_dataset("bloodmnist", path=make_fake_medmnist(tmp_path / "b.npz", "bloodmnist"))
    with pytest.raises(ConfigError, match="'test'"):
        make_pipeline(data, "test", sampler="balanced")
    chest = load_dataset("chestmnist", path=make_fake_medmnist(tmp_path / "c.npz", "chestmnist"))
    with pytest.raises(ConfigError, match="multi-label"):
        make_pipeline(chest, "train", sampler="balanced")


# ---- prefetching ------------------------------------------------------------------------------------------


def _live_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.mark.parametrize("workers", [1, 3])
def test_prefetching_gives_the_same_batches(workers: int) -> None:
    split = indexed_split(side=10, channels=3)
    sync = BatchPipeline(split, batch_size=7, shuffle=True, augment=AUG, prefetch=0)
    ahead = BatchPipeline(split, batch_size=7, shuffle=True, augment=AUG, prefetch=3, workers=workers)
    assert _same(list(sync.epoch(5)), list(ahead.epoch(5)))


def test_stopping_early_leaves_no_thread_behind() -> None:
    pipeline = BatchPipeline(indexed_split(200), batch_size=2, prefetch=4, workers=2)
    iterator = pipeline.epoch(0)
    next(iterator)
    next(iterator)
    assert _live_workers()
    iterator.close()
    assert _live_workers() == []
    for _ in pipeline.epoch(1):
        break
    assert _live_workers() == []  # the abandoned generator was closed when it was dropped


def test_an_error_while_building_reaches_the_consumer_and_stops_the_threads() -> None:
    def make(i: int) -> int:
        if i == 3:
            raise RuntimeError("batch 3 is broken")
        return i

    seen = []
    with pytest.raises(RuntimeError, match="batch 3"):
        for item in prefetched(make, 10, depth=2, workers=2):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert _live_workers() == []
