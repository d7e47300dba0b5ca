"""Image metrics: agreement with scikit-image, the identical/near/far cases, inputs they refuse."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage import metrics as skm

from accuracy.compare.images import (
    ImageThresholds,
    absolute_difference_map,
    as_image_layout,
    compare_images,
    data_range_for,
    mean_squared_error,
    peak_signal_noise_ratio,
    structural_similarity,
    structural_similarity_per_channel,
)
from tests.image_data import landscape, with_noise


@pytest.mark.parametrize("bits, channels", [(8, 3), (8, 1), (16, 3), (16, 1)])
def test_psnr_and_ssim_match_scikit_image(bits, channels):
    image = landscape(48, bits=bits, channels=channels)
    noisy = with_noise(image, 3.0 if bits == 8 else 800.0, seed=1)
    data_range = 255 if bits == 8 else 65535
    assert peak_signal_noise_ratio(image, noisy, data_range=data_range) == pytest.approx(
        skm.peak_signal_noise_ratio(image, noisy, data_range=data_range), rel=1e-12)
    axis = -1 if channels == 3 else None
    expected_ssim = skm.structural_similarity(image, noisy, data_range=data_range, channel_axis=axis)
    assert structural_similarity(image, noisy, data_range=data_range) == pytest.approx(expected_ssim, abs=1e-9)
    assert mean_squared_error(image, noisy) == pytest.approx(skm.mean_squared_error(image, noisy), rel=1e-12)


def test_identical_images_give_infinite_psnr_and_perfect_scores():
    image = landscape(32)
    result = compare_images(image, image.copy(), data_range=255)
    assert math.isinf(result.psnr) and result.psnr > 0
    assert result.ssim == 1.0 and result.mse == 0.0 and result.max_abs == 0.0
    assert result.passed and result.failures == ()


def test_near_passes_and_far_fails_the_default_thresholds():
    image = landscape(64)
    near = compare_images(image, with_noise(image, 0.5), data_range=255)
    far = compare_images(image, with_noise(image, 20.0), data_range=255)
    assert near.passed, near.failures
    assert not far.passed
    assert any(f.startswith("ssim") for f in far.failures) and any(f.startswith("psnr") for f in far.failures)
    assert near.ssim > far.ssim and near.psnr > far.psnr


def test_per_channel_ssim_sees_a_single_damaged_channel():
    image = landscape(48)
    damaged = image.copy()
    damaged[..., 2] = with_noise(image[..., 2], 25.0)
    red, green, blue = structural_similarity_per_channel(image, damaged, data_range=255)
    assert red == 1.0 and green == 1.0 and blue < 0.6
    assert structural_similarity(image, damaged, data_range=255) == pytest.approx((red + green + blue) / 3)


def test_data_range_is_required_and_matters_for_float_images():
    image = landscape(32).astype(np.float64) / 255
    noisy = with_noise(landscape(32), 4.0).astype(np.float64) / 255
    with pytest.raises(TypeError):
        peak_signal_noise_ratio(image, noisy)  # keyword-only and required: no dtype guess
    at_one = peak_signal_noise_ratio(image, noisy, data_range=1.0)
    at_two = peak_signal_noise_ratio(image, noisy, data_range=2.0)
    assert at_two - at_one == pytest.approx(20 * math.log10(2), rel=1e-9)
    with pytest.raises(ValueError, match="data_range"):
        structural_similarity(image, noisy, data_range=0)


def test_refuses_mismatched_sizes_and_tiny_images():
    with pytest.raises(ValueError, match="sizes differ"):
        compare_images(landscape(32), landscape(16), data_range=255)
    with pytest.raises(ValueError, match="too small"):
        structural_similarity(np.zeros((2, 2)), np.zeros((2, 2)), data_range=1.0)


def test_small_images_use_a_window_that_fits():
    image = landscape(5)
    assert 0 < structural_similarity(image, with_noise(image, 10.0), data_range=255) < 1


def test_max_abs_threshold_and_nan_fail():
    image = landscape(32)
    shifted = (image.astype(np.int16) + 3).clip(0, 255).astype(np.uint8)
    assert not compare_images(image, shifted, data_range=255, thresholds=ImageThresholds(max_abs=2)).passed
    assert compare_images(image, shifted, data_range=255, thresholds=ImageThresholds(max_abs=3)).passed
    broken = image.astype(np.float64) / 255
    broken[0, 0, 0] = np.nan
    assert not compare_images(image.astype(np.float64) / 255, broken, data_range=1.0).passed


def test_difference_map_takes_the_worst_channel():
    image = landscape(16)
    other = image.copy()
    other[3, 4, 1] = np.uint8(int(image[3, 4, 1]) ^ 0x40)
    diff = absolute_difference_map(image, other)
    assert diff.shape == (16, 16)
    assert diff[3, 4] == 64 and np.count_nonzero(diff) == 1


def test_data_range_for_dtypes():
    assert data_range_for(np.zeros(3, np.uint8)) == 255
    assert data_range_for(np.zeros(3, np.uint16)) == 65535
    assert data_range_for(np.array([0.0, 0.5, 1.0])) == 1.0
    assert data_range_for(np.array([-3.0, 1.0])) == 4.0


def test_image_layout_of_latents():
    latents = np.zeros((1, 4, 8, 8))
    assert as_image_layout(latents).shape == (8, 8, 4)
    assert as_image_layout(np.zeros((10, 10))).shape == (10, 10)
    assert as_image_layout(np.zeros(100)) is None


@pytest.mark.parametrize("shape", [(37, 50), (9, 9, 3), (5, 12, 3), (64, 48, 4)])
def test_exact_integer_ssim_equals_scikit_image_on_odd_shapes(shape):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = with_noise(image, 6.0)
    window = min(7, min(shape[:2]) if min(shape[:2]) % 2 else min(shape[:2]) - 1)
    axis = -1 if len(shape) == 3 else None
    expected = skm.structural_similarity(image, noisy, data_range=255, channel_axis=axis, win_size=window)
    assert structural_similarity(image, noisy, data_range=255) == pytest.approx(expected, abs=1e-12)
    floats = structural_similarity(image.astype(np.float64), noisy.astype(np.float64), data_range=255)
    assert floats == pytest.approx(expected, abs=1e-12)  # the scikit-image route agrees with the exact one
