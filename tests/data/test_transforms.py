"""Tests for medbench.data.transforms: resizing against np.repeat and PIL, normalisation, augmentation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from medbench.data import transforms as T
from medbench.data.transforms import separable


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)


def _params(n: int, **fields) -> T.AugmentParams:
    base = T.AugmentParams.identity(n)
    values = {
        "shift_y": base.shift_y,
        "shift_x": base.shift_x,
        "hflip": base.hflip,
        "vflip": base.vflip,
        "angles": base.angles,
    }
    values.update({k: np.asarray(v) for k, v in fields.items() if k != "rotate_mode"})
    return T.AugmentParams(**values, rotate_mode=fields.get("rotate_mode", "nearest"))


def _pil_resize(images: np.ndarray, size: int, method: int) -> np.ndarray:
    mode = "F" if images.dtype == np.float32 else None
    return np.stack(
        [np.asarray(Image.fromarray(im, mode=mode).resize((size, size), method)) for im in images]
    )


# ---- resize -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [2, 8])
def test_nearest_integer_factor_equals_np_repeat(rgb: np.ndarray, factor: int) -> None:
    out = T.resize(rgb, 28 * factor, "nearest")
    np.testing.assert_array_equal(out, np.repeat(np.repeat(rgb, factor, axis=1), factor, axis=2))
    assert out.dtype == np.uint8


def test_nearest_keeps_3d_grey_batches(rgb: np.ndarray) -> None:
    grey = rgb[..., 0]
    out = T.resize(grey, 56)
    assert out.shape == (5, 56, 56)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(grey, 2, axis=1), 2, axis=2))


@pytest.mark.parametrize("size", [20, 50, 64, 224])
def test_nearest_matches_pil(rgb: np.ndarray, size: int) -> None:
    np.testing.assert_array_equal(T.resize(rgb, size, "nearest"), _pil_resize(rgb, size, Image.NEAREST))


@pytest.mark.parametrize("size", [50, 64, 224])
def test_bilinear_upsampling_matches_pil_float(rgb: np.ndarray, size: int) -> None:
    grey = rgb[..., 0].astype(np.float32)
    np.testing.assert_allclose(
        T.resize(grey, size, "bilinear"), _pil_resize(grey, size, Image.BILINEAR), atol=1e-3
    )


@pytest.mark.parametrize("size", [64, 224])
def test_bilinear_upsampling_uint8_within_one_level_of_pil(rgb: np.ndarray, size: int) -> None:
    # PIL rounds to uint8 between its horizontal and vertical passes; medbench rounds once, at the end.
    ours = T.resize(rgb, size, "bilinear").astype(int)
    pil = _pil_resize(rgb, size, Image.BILINEAR).astype(int)
    assert np.abs(ours - pil).max() <= 1
    assert np.abs(ours - pil).mean() < 0.3


def test_bilinear_downsampling_by_two_averages_pixel_pairs(rgb: np.ndarray) -> None:
    # Without antialiasing (torch align_corners=False); PIL would average a wider footprint here.
    x = rgb.astype(np.float32)
    expected = x.reshape(5, 14, 2, 14, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(T.resize(x, 14, "bilinear"), expected, rtol=1e-6)


def test_resize_to_a_rectangle(rgb: np.ndarray) -> None:
    out = T.resize(rgb, (56, 84))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(rgb, 2, axis=1), 3, axis=2))


def test_resize_rejects_unknown_method(rgb: np.ndarray) -> None:
    with pytest.raises(ValueError, match="bicubic"):
        T.resize(rgb, 56, "bicubic")


# ---- normalisation ----------------------------------------------------------------------------------------


def test_official_normalisation_maps_0_and_255_to_minus_one_and_one() -> None:
    pixels = np.array([0, 51, 128, 255], np.uint8).reshape(1, 1, 4, 1)
    out = T.normalize(pixels, T.Normalization.official())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [-1.0, 51 / 127.5 - 1, 128 / 127.5 - 1, 1.0], atol=1e-6)


def test_none_normalisation_scales_to_unit_interval() -> None:
    pixels = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
    np.testing.assert_allclose(T.normalize(pixels, T.Normalization.none()).ravel(), [0, 0.2, 1], atol=1e-7)


def test_per_channel_normalisation_matches_the_formula(rgb: np.ndarray) -> None:
    norm = T.Normalization((0.1, 0.5, 0.9), (0.2, 0.3, 0.4))
    expected = (rgb / 255.0 - np.array(norm.mean)) / np.array(norm.std)
    np.testing.assert_allclose(T.normalize(rgb, norm), expected, atol=1e-5)


def test_imagenet_normalisation_is_torchvisions() -> None:
    norm = T.Normalization.imagenet()
    assert norm.mean == (0.485, 0.456, 0.406) and norm.std == (0.229, 0.224, 0.225)
    assert norm.name == "imagenet" and norm.to_dict()["name"] == "imagenet"
    # black and white pixels in each channel: (0 - mean) / std and (1 - mean) / std
    pixels = np.array([[0, 0, 0], [255, 255, 255]], np.uint8).reshape(2, 1, 1, 3)
    out = T.normalize(pixels, norm).reshape(2, 3)
    np.testing.assert_allclose(out[0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225], rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        norm.scale_shift(1)


def test_normalisation_checks_its_values() -> None:
    with pytest.raises(ValueError, match="std"):
        T.Normalization((0.5,), (0.0,))
    with pytest.raises(ValueError, match="same"):
        T.Normalization((0.5, 0.5), (0.5,))
    with pytest.raises(ValueError, match="3 channels"):
        T.Normalization((0.1, 0.2, 0.3), (1, 1, 1)).scale_shift(1)


def test_channel_stats_match_numpy_and_ignore_chunking(rgb: np.ndarray) -> None:
    mean, std = T.compute_channel_stats(rgb, chunk_size=2)
    x = rgb.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, x.std(axis=0), rtol=1e-12)
    assert (mean, std) == T.compute_channel_stats(rgb, chunk_size=4096)  # exact: integer histograms


def test_channel_stats_of_grey_and_memmapped_images(tmp_path, rgb: np.ndarray) -> None:
    np.save(tmp_path / "grey.npy", rgb[..., 0])
    grey = np.load(tmp_path / "grey.npy", mmap_mode="r")
    mean, std = T.compute_channel_stats(grey, chunk_size=3)
    assert len(mean) == len(std) == 1
    np.testing.assert_allclose(mean[0], (rgb[..., 0] / 255.0).mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="empty"):
        T.compute_channel_stats(rgb[:0])


# ---- geometry and augmentation ----------------------------------------------------------------------------


def test_flips_really_flip(rgb: np.ndarray) -> None:
    n = len(rgb)
    np.testing.assert_array_equal(
        T.geometric_transform(rgb, params=_params(n, hflip=[True] * n)), rgb[:, :, ::-1]
    )
    np.testing.assert_array_equal(
        T.geometric_transform(rgb, params=_params(n, vflip=[True] * n)), rgb[:, ::-1]
    )


def test_crop_shift_moves_the_image_and_fills_the_border(rgb: np.ndarray) -> None:
    out = T.geometric_transform(rgb[:2], params=_params(2, shift_y=[2, -3], shift_x=[-1, 0]), fill=7)
    # output (y, x) shows input (y + dy, x + dx): the crop window of the zero-padded image
    np.testing.assert_array_equal(out[0, :-2, 1:], rgb[0, 2:, :-1])
    assert (out[0, -2:] == 7).all() and (out[0, :, 0] == 7).all()
    np.testing.assert_array_equal(out[1, 3:], rgb[1, :-3])
    assert (out[1, :3] == 7).all()


@pytest.mark.parametrize("side", [27, 28])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("angle, k", [(90, 1), (-90, -1), (180, 2), (0, 0)])
def test_right_angle_rotations_equal_rot90(side: int, mode: str, angle: float, k: int) -> None:
    x = np.random.default_rng(side).integers(0, 256, (3, side, side, 3), dtype=np.uint8)
    out = T.geometric_transform(x, params=_params(3, angles=[angle] * 3, rotate_mode=mode))
    np.testing.assert_array_equal(out, np.rot90(x, k, axes=(1, 2)))  # positive = counter-clockwise


def test_rotation_fills_the_corners() -> None:
    x = np.full((1, 28, 28, 1), 200, np.uint8)
    out = T.geometric_transform(x, params=_params(1, angles=[45.0]), fill=3)
    assert out[0, 0, 0, 0] == 3 and out[0, 14, 14, 0] == 200


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_composed_resize_and_augmentation_equal_doing_them_one_by_one(rgb: np.ndarray, method: str) -> None:
    aug = T.Augment(hflip=True, vflip=True, crop_padding=5, rotate_degrees=20)
    params = T.draw_augment_params(aug, len(rgb), key=(3, 1, 2, 0))
    x = rgb.astype(np.float32)
    composed = T.geometric_transform(x, size=64, resize_method=method, params=params, fill=-1)
    stepwise = T.geometric_transform(T.resize(x, 64, method), params=params, fill=-1)
    np.testing.assert_array_equal(composed, stepwise)


def test_normalising_first_gives_the_same_batch_as_normalising_last(rgb: np.ndarray) -> None:
    # The pipeline normalises at 28 px and then gathers; every nearest step only moves values.
    aug = T.Augment(hflip=True, vflip=True, crop_padding=4, rotate_degrees=15)
    params = T.draw_augment_params(aug, len(rgb), key=(0, 0, 2, 0))
    norm = T.Normalization((0.2, 0.4, 0.6), (0.3, 0.2, 0.1))
    fill = norm.scale_shift(3)[1]
    first = T.geometric_transform(T.normalize(rgb, norm), size=224, params=params, fill=fill)
    last = T.normalize(T.geometric_transform(rgb, size=224, params=params, fill=0), norm)
    np.testing.assert_array_equal(first, last)


def test_augment_params_depend_only_on_the_key() -> None:
    aug = T.Augment(hflip=True, vflip=True, crop_padding=4, rotate_degrees=15)
    a, b = (T.draw_augment_params(aug, 64, key=(1, 2, 2, 3)) for _ in range(2))
    c = T.draw_augment_params(aug, 64, key=(1, 2, 2, 4))
    for field in ("shift_y", "shift_x", "hflip", "vflip", "angles"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.angles, c.angles)


def test_augment_ops_draw_independently() -> None:
    flips_only = T.draw_augment_params(T.Augment(hflip=True), 64, key=(0, 0, 2, 0))
    with_more = T.draw_augment_params(
        T.Augment(hflip=True, rotate_degrees=10, crop_padding=2), 64, (0, 0, 2, 0)
    )
    np.testing.assert_array_equal(flips_only.hflip, with_more.hflip)


def test_augment_params_stay_in_range() -> None:
    params = T.draw_augment_params(
        T.Augment(hflip=True, crop_padding=3, rotate_degrees=15), 2000, (5, 0, 2, 0)
    )
    assert params.shift_y.min() == -3 and params.shift_y.max() == 3
    assert np.abs(params.angles).max() <= 15 and np.abs(params.angles).max() > 14
    assert 0.45 < params.hflip.mean() < 0.55
    assert not params.vflip.any()


def test_augment_validation_and_config_duck_typing() -> None:
    with pytest.raises(ValueError, match="rotate_degrees"):
        T.Augment(rotate_degrees=200)
    with pytest.raises(ValueError, match="crop_padding"):
        T.Augment(crop_padding=-1)
    config = SimpleNamespace(hflip=True, vflip=False, rotate_degrees=10.0, crop_padding=2)
    assert T.Augment.from_config(config) == T.Augment(hflip=True, rotate_degrees=10.0, crop_padding=2)
    assert not T.Augment().enabled


def test_augment_batch_changes_images_but_keeps_shape(rgb: np.ndarray) -> None:
    aug = T.Augment(hflip=True, crop_padding=2, rotate_degrees=10)
    out = T.augment_batch(rgb, aug, key=(0, 0, 2, 0))
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    assert not np.array_equal(out, rgb)


def test_batched_and_per_image_gathers_agree(rgb: np.ndarray, monkeypatch) -> None:
    # Small images take one batched gather, large ones a loop over images: both must give the same batch.
    params = T.draw_augment_params(T.Augment(hflip=True, vflip=True, crop_padding=6), len(rgb), (0, 0, 2, 0))
    batched = T.geometric_transform(rgb, size=40, params=params, fill=9)
    monkeypatch.setattr(separable, "_SMALL_IMAGE", 0)
    np.testing.assert_array_equal(T.geometric_transform(rgb, size=40, params=params, fill=9), batched)
