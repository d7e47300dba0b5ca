"""Median wall time of SSIM + PSNR on two 512x512 RGB 8-bit images, as ``accuracy diff`` computes
them, beside scikit-image's own calls on the same pair in the same run. Target: <= 100 ms.

    python bench/bench_image_metrics.py [--rounds 15] [--size 512]

Also prints the full ``compare_images`` (every metric) and the agreement with scikit-image, so a
faster number can never come from a different answer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

TARGET_MS = 100.0


def _pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.3 + 0.5 * y, 0.5 + 0.3 * np.sin(12 * x) * np.cos(7 * y), 0.9 - 0.5 * y], -1)
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1)
    expected = np.round(image * 255).astype(np.uint8)
    obtained = np.clip(expected.astype(np.int16) + rng.integers(-3, 4, expected.shape), 0, 255).astype(np.uint8)
    return expected, obtained


def _median_ms(function, rounds: int) -> float:
    function()  # warm-up: imports, allocations
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    from skimage import metrics as skm

    from accuracy.compare.images import compare_images, peak_signal_noise_ratio, structural_similarity

    expected, obtained = _pair(args.size)

    def ours() -> tuple[float, float]:
        return (structural_similarity(expected, obtained, data_range=255),
                peak_signal_noise_ratio(expected, obtained, data_range=255))

    def theirs() -> tuple[float, float]:
        return (skm.structural_similarity(expected, obtained, data_range=255, channel_axis=-1),
                skm.peak_signal_noise_ratio(expected, obtained, data_range=255))

    ours_ms = _median_ms(ours, args.rounds)
    theirs_ms = _median_ms(theirs, args.rounds)
    everything_ms = _median_ms(lambda: compare_images(expected, obtained, data_range=255), args.rounds)
    (ssim, psnr), (ssim_ref, psnr_ref) = ours(), theirs()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"images: 2 x {args.size}x{args.size} RGB uint8, {args.rounds} rounds, median wall time "
          f"(load average {load} on {os.cpu_count()} cores: a busy machine slows both sides alike)")
    print(f"ssim+psnr (accuracy)       {ours_ms:8.1f} ms   target <= {TARGET_MS:.0f} ms: "
          f"{'met' if ours_ms <= TARGET_MS else 'MISSED'}")
    print(f"ssim+psnr (scikit-image)   {theirs_ms:8.1f} ms   ratio accuracy/scikit-image {ours_ms / theirs_ms:.2f}")
    print(f"compare_images (all)       {everything_ms:8.1f} ms")
    print(f"agreement: |ssim diff| {abs(ssim - ssim_ref):.2e}, |psnr diff| {abs(psnr - psnr_ref):.2e} "
          f"(ssim {ssim:.6f}, psnr {psnr:.3f} dB)")


if __name__ == "__main__":
    main()
