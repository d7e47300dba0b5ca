"""Helpers for users' own pytest suites: the ``image_regression`` fixture
(``accuracy.testing.image_regression``), judged by SSIM/PSNR against stored golden images."""

from __future__ import annotations

from accuracy.testing.image_regression import ImageRegression, image_regression

__all__ = ["ImageRegression", "image_regression"]
