"""Deterministic test pictures: a smooth synthetic "landscape" with edges and texture (what a
diffusion pipeline's output looks like to SSIM), and near / far variants of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def landscape(size: int = 64, *, bits: int = 8, channels: int = 3) -> np.ndarray:
    """Sky gradient, a sun, hills with texture: (size, size, channels) uint8/uint16 (or (size, size))."""
    y, x = np.mgrid[0:size, 0:size] / size
    sky = np.stack([0.35 + 0.3 * y, 0.55 + 0.3 * y, 0.95 - 0.2 * y], -1)
    sun = ((x - 0.72) ** 2 + (y - 0.25) ** 2) < 0.012
    sky[sun] = (1.0, 0.85, 0.3)
    hill = y > 0.62 + 0.12 * np.sin(6 * x)
    texture = 0.08 * np.sin(40 * x) * np.cos(33 * y)
    ground = np.stack([0.2 + texture, 0.45 + texture, 0.15 + 0.5 * texture], -1)
    image = np.where(hill[..., None], ground, sky)
    top = 255 if bits == 8 else 65535
    pixels = np.round(np.clip(image, 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)
    if channels == 1:
        return np.round(pixels.mean(axis=2)).astype(pixels.dtype)
    if channels == 4:
        alpha = np.full(pixels.shape[:2] + (1,), top, dtype=pixels.dtype)
        return np.concatenate([pixels, alpha], axis=2)
    return pixels


def with_noise(image: np.ndarray, sigma: float, *, seed: int = 0) -> np.ndarray:
    """``image`` plus Gaussian noise of ``sigma`` pixel units, clipped to its dtype."""
    top = np.iinfo(image.dtype).max
    noisy = image.astype(np.float64) + np.random.default_rng(seed).normal(0.0, sigma, image.shape)
    return np.clip(np.round(noisy), 0, top).astype(image.dtype)


def save(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path
