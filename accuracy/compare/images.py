"""Image metrics: SSIM, PSNR, MSE, max/mean absolute error, plus the tensor metrics for latents.

Pure functions over arrays, reference first (``image_true, image_test``), no file loading (that is
``accuracy.imageio``). ``data_range`` is keyword-only and required wherever guessing it misleads:
scikit-image would take 2.0 for float images (the dtype's -1..1 range), which inflates PSNR by 6 dB
for images that live in 0..1. ``compare_images`` bundles everything into one ``ImageComparison``
that knows whether it met its ``ImageThresholds``.

Images are ``(H, W)`` or ``(H, W, C)``; colour images are judged per channel and the channel
values are averaged (scikit-image's ``channel_axis=-1``), and the per-channel values are kept.

References: Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
structural similarity", IEEE TIP 13(4), 2004 (SSIM); PSNR = 10 log10(data_range^2 / MSE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from accuracy.compare.tensors import cosine_similarity, relative_l2_error

# scikit-image's default window; smaller images get the largest odd window that fits.
SSIM_WINDOW = 7


def _validate_pair(image_true: np.ndarray, image_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image_true = np.asarray(image_true)
    image_test = np.asarray(image_test)
    if image_true.shape != image_test.shape:
        raise ValueError(
            f"image sizes differ: expected {image_true.shape}, obtained {image_test.shape}"
            " (resize one of them, e.g. `accuracy diff --resize`)"
        )
    if image_true.ndim not in (2, 3):
        raise ValueError(f"an image is (H, W) or (H, W, C); got shape {image_true.shape}")
    return image_true, image_test


def _validate_data_range(data_range: float) -> float:
    data_range = float(data_range)
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    return data_range


def data_range_for(image: np.ndarray) -> float:
    """The value range a pixel of this dtype can span: 255 for uint8, 65535 for uint16, and for
    float images and wider integer arrays (int32, int64: no pixel format) the reference's own range
    (max - min, or 1.0 when it is constant or in 0..1).

    Callers that know better (e.g. a float image in 0..255) pass ``data_range`` themselves.
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 2:
        info = np.iinfo(image.dtype)
        return float(info.max) if info.min == 0 else float(info.max - info.min)
    if image.dtype == np.bool_:
        return 1.0
    if np.issubdtype(image.dtype, np.integer):  # int32/int64 arrays are no pixel format: their own range
        image = image.astype(np.float64)  # (the dtype's 4e9 or 9e18 made every difference invisible)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 1.0
    low, high = float(finite.min()), float(finite.max())
    if 0.0 <= low and high <= 1.0:
        return 1.0
    return high - low if high > low else 1.0


def mean_squared_error(image_true: np.ndarray, image_test: np.ndarray) -> float:
    """Mean of the squared pixel differences, accumulated in float64."""
    image_true, image_test = _validate_pair(image_true, image_test)
    diff = image_true.astype(np.float64) - image_test.astype(np.float64)
    return float(np.mean(diff * diff)) if diff.size else 0.0


def peak_signal_noise_ratio(image_true: np.ndarray, image_test: np.ndarray, *, data_range: float) -> float:
    """PSNR in dB: ``10 log10(data_range**2 / MSE)``.

    Identical images give ``inf`` (reported, not an error); NaN anywhere gives NaN. Matches
    ``skimage.metrics.peak_signal_noise_ratio`` with the same ``data_range``.
    """
    data_range = _validate_data_range(data_range)
    return _psnr_from_mse(mean_squared_error(image_true, image_test), data_range)


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if math.isnan(mse):
        return float("nan")
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range * data_range / mse))


def _ssim_window(shape: tuple[int, ...]) -> int:
    side = min(shape[:2])
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if window < 3:
        raise ValueError(f"image of size {shape[:2]} is too small for SSIM (needs at least 3x3 pixels)")
    return window


def structural_similarity_per_channel(
    image_true: np.ndarray, image_test: np.ndarray, *, data_range: float
) -> list[float]:
    """SSIM of each channel (one value for a grey image): scikit-image's statistic, a uniform 7x7
    window, K1 = 0.01, K2 = 0.03, sample covariance, the border of half a window left out.

    8- and 16-bit images take an exact route: the window sums are integers, so they are summed
    exactly and the result equals scikit-image's to ~1e-15 at twice its speed (the benchmark's
    512x512 RGB target). Float images go through ``skimage.metrics.structural_similarity`` in
    float64 (float32 would cancel badly in E[x^2] - E[x]^2 in smooth regions).
    """
    data_range = _validate_data_range(data_range)
    image_true, image_test = _validate_pair(image_true, image_test)
    window = _ssim_window(image_true.shape)
    a, b = image_true, image_test
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if _small_integers(a) and _small_integers(b):
        return _ssim_from_integer_sums(a, b, data_range=data_range, window=window)
    from skimage.metrics import structural_similarity as _skimage_ssim

    a, b = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    values = []
    for channel in range(a.shape[2]):
        x, y = a[..., channel], b[..., channel]
        if np.array_equal(x, y) and np.isfinite(x).all():
            values.append(1.0)  # exact, and spares the filtering
            continue
        values.append(float(_skimage_ssim(x, y, data_range=data_range, win_size=window)))
    return values


def _small_integers(image: np.ndarray) -> bool:
    """Integers of at most 16 bits: their window sums of squares cannot overflow int64."""
    return np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 2


def _window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Exact sums over every ``window`` x ``window`` block of (C, H, W) int64 values."""
    running = np.cumsum(values, axis=2)
    columns = running[:, :, window - 1:].copy()
    columns[:, :, 1:] -= running[:, :, :-window]
    for row in range(1, columns.shape[1]):  # numpy's cumsum over a middle axis is several times slower
        columns[:, row] += columns[:, row - 1]
    sums = columns[:, window - 1:].copy()
    sums[:, 1:] -= columns[:, :-window]
    return sums


def _ssim_from_integer_sums(a: np.ndarray, b: np.ndarray, *, data_range: float, window: int) -> list[float]:
    x = np.moveaxis(a, 2, 0).astype(np.int64)
    y = np.moveaxis(b, 2, 0).astype(np.int64)
    n = window * window
    sum_x, sum_y = _window_sums(x, window), _window_sums(y, window)
    sum_xx, sum_yy, sum_xy = _window_sums(x * x, window), _window_sums(y * y, window), _window_sums(x * y, window)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_mean_sq, per_cov = 1.0 / (n * n), 1.0 / (n * (n - 1))  # means: s/n; sample covariance: (n sxy - sx sy)/(n(n-1))
    cross = sum_x * sum_y
    squares = sum_x * sum_x + sum_y * sum_y
    numerator = (2 * per_mean_sq * cross + c1) * (2 * per_cov * (n * sum_xy - cross) + c2)
    denominator = (per_mean_sq * squares + c1) * (per_cov * (n * (sum_xx + sum_yy) - squares) + c2)
    return [float(v) for v in (numerator / denominator).mean(axis=(1, 2))]


def structural_similarity(image_true: np.ndarray, image_test: np.ndarray, *, data_range: float) -> float:
    """Mean SSIM over the channels (1.0 for identical images, lower is worse, range -1..1)."""
    return float(np.mean(structural_similarity_per_channel(image_true, image_test, data_range=data_range)))


def absolute_difference_map(image_true: np.ndarray, image_test: np.ndarray) -> np.ndarray:
    """Per-pixel ``|true - test|``, the largest over the channels: (H, W) float64, for heat maps."""
    image_true, image_test = _validate_pair(image_true, image_test)
    diff = np.abs(image_true.astype(np.float64) - image_test.astype(np.float64))
    return diff.max(axis=2) if diff.ndim == 3 else diff


@dataclass(frozen=True)
class ImageThresholds:
    """What an image must meet. ``None`` disables a bound. Defaults are those of ``accuracy diff``."""

    ssim_min: float | None = 0.98
    psnr_min: float | None = 30.0
    max_abs: float | None = None  # in pixel units (0..255 for 8-bit images)
    cosine_min: float | None = None


@dataclass(frozen=True)
class ImageComparison:
    """Every metric of one image pair, and the verdict against the thresholds it was judged by."""

    ssim: float
    psnr: float
    mse: float
    max_abs: float
    mean_abs: float
    cosine: float
    rel_l2: float
    data_range: float
    ssim_per_channel: tuple[float, ...]
    shape: tuple[int, ...]
    thresholds: ImageThresholds = ImageThresholds()
    failures: tuple[str, ...] = ()
    passed: bool = True

    def metrics(self) -> dict[str, float | list[float]]:
        return {
            "ssim": self.ssim,
            "psnr": self.psnr,
            "mse": self.mse,
            "max_abs": self.max_abs,
            "mean_abs": self.mean_abs,
            "cosine": self.cosine,
            "rel_l2": self.rel_l2,
            "ssim_per_channel": list(self.ssim_per_channel),
            "data_range": self.data_range,
        }

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "metrics": self.metrics(),
            "thresholds": {k: v for k, v in vars(self.thresholds).items() if v is not None},
            "failures": list(self.failures),
            "shape": list(self.shape),
        }


def judge(metrics: dict[str, float], thresholds: ImageThresholds) -> list[str]:
    """The failed bounds, one readable line each ("ssim 0.91 < 0.98"); NaN always fails."""
    failures = []
    lower = (("ssim", thresholds.ssim_min), ("psnr", thresholds.psnr_min), ("cosine", thresholds.cosine_min))
    for name, bound in lower:
        if bound is not None and not (metrics[name] >= bound):
            failures.append(f"{name} {metrics[name]:.6g} < {bound}")
    if thresholds.max_abs is not None and not (metrics["max_abs"] <= thresholds.max_abs):
        failures.append(f"max_abs {metrics['max_abs']:.6g} > {thresholds.max_abs}")
    return failures


def compare_images(
    image_true: np.ndarray,
    image_test: np.ndarray,
    *,
    data_range: float,
    thresholds: ImageThresholds = ImageThresholds(),
) -> ImageComparison:
    """All image metrics of ``image_test`` against ``image_true`` and whether they meet ``thresholds``.

    Non-finite values follow ``compare``'s float rule: where both sides hold the same inf or NaN they
    agree (and count as zeros in every metric, so none is NaN); one-sided ones fail with their count.
    """
    image_true, image_test = _validate_pair(image_true, image_test)
    nonfinite_failures = []
    if np.issubdtype(image_true.dtype, np.floating) or np.issubdtype(image_test.dtype, np.floating):
        both = np.isfinite(image_true) & np.isfinite(image_test)
        if not both.all():
            from accuracy.compare.tensors import TensorThresholds, compare_tensors

            rule = compare_tensors(image_true, image_test, thresholds=TensorThresholds(cosine_min=None))
            nonfinite_failures = [f for f in rule.failures if "non-finite" in f]
            image_true, image_test = np.where(both, image_true, 0.0), np.where(both, image_test, 0.0)
    per_channel = structural_similarity_per_channel(image_true, image_test, data_range=data_range)
    a, b = image_true.astype(np.float64), image_test.astype(np.float64)  # converted once for all metrics
    absolute = np.abs(a - b)
    mse = float(np.mean(absolute * absolute)) if absolute.size else 0.0
    metrics = {
        "ssim": float(np.mean(per_channel)),
        "psnr": _psnr_from_mse(mse, _validate_data_range(data_range)),
        "mse": mse,
        "max_abs": float(absolute.max()) if absolute.size else 0.0,
        "mean_abs": float(absolute.mean()) if absolute.size else 0.0,
        "cosine": cosine_similarity(a, b),
        "rel_l2": relative_l2_error(a, b),
    }
    failures = nonfinite_failures + judge(metrics, thresholds)
    return ImageComparison(
        **metrics,
        data_range=float(data_range),
        ssim_per_channel=tuple(per_channel),
        shape=tuple(image_true.shape),
        thresholds=thresholds,
        failures=tuple(failures),
        passed=not failures,
    )


def as_image_layout(array: np.ndarray) -> np.ndarray | None:
    """An array in image layout (H, W) or (H, W, C), or None when it is not image-like.

    Leading size-1 axes are dropped (a batch of one) and channel-first arrays with at most four
    channels, the NCHW latents of diffusion pipelines, are moved channel-last.
    """
    array = np.asarray(array)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] <= 4 < min(array.shape[1:]):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] <= 4):
        return array if min(array.shape[:2]) >= 3 else None
    return None
