"""``image_regression``: a pytest fixture that judges an image against its golden by SSIM/PSNR.

Like pytest-regressions' ``image_regression``, but with thresholds a migration can live with (the
NPU image is never bit-identical to the GPU one)::

    def test_landscape(image_regression):
        image = pipeline(prompt, generator=torch.manual_seed(0)).images[0]
        image_regression.check(image, ssim_min=0.98, psnr_min=30)

Goldens live beside the test module, in ``<test_module_stem>/<test_name>.png`` (+ sidecar JSON), and
are written only with ``pytest --accuracy-update-baselines``. On failure the expected, obtained and
difference pictures go to ``$ACCURACY_ARTIFACTS`` (default ``accuracy-artifacts/`` in the rootdir),
one folder per test, for CI to collect. Load it with ``-p accuracy.testing.image_regression`` or
through the accuracy pytest plugin.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from accuracy.compare.images import ImageThresholds


class GoldenRecorded(UserWarning):
    """A golden image was written by this run (``--accuracy-update-baselines``)."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"


class ImageRegression:
    """Checks images against goldens in ``folder``; one instance per test."""

    def __init__(self, *, folder: Path, name: str, artifacts_dir: Path, update: bool, nodeid: str = ""):
        self.folder = folder
        self.name = name
        self.artifacts_dir = artifacts_dir
        self.update = update
        self.nodeid = nodeid

    def check(
        self,
        image: Any,
        *,
        basename: str | None = None,
        ssim_min: float | None = 0.98,
        psnr_min: float | None = 30.0,
        max_abs: float | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        """Fail the test when ``image`` is further from its golden than the thresholds allow.

        ``image``: a PIL image, a uint8/uint16 array, floats in 0..1, or the path of an image file.
        ``basename`` names the golden (default: the test's name), so one test can check several.
        """
        __tracebackhide__ = True
        from accuracy.errors import AccuracyError
        from accuracy.goldens import (
            GoldenMissing,
            compare_with_golden,
            load_golden,
            record_golden,
            write_artifacts,
        )
        from accuracy.imageio import to_pixels

        case = _safe(basename or self.name)
        if isinstance(image, (str, Path)):
            from accuracy.imageio import read_image

            try:
                image = read_image(image).array
            except AccuracyError as exc:
                pytest.fail(f"image regression '{case}': {exc}", pytrace=False)
        if self.update:
            try:
                outcome = record_golden(self.folder, case, image, force=True, changes_dir=self.artifacts_dir,
                                        provenance={"test": self.nodeid, **dict(provenance or {})})
            except AccuracyError as exc:
                pytest.fail(f"cannot record golden '{case}': {exc}", pytrace=False)
            if outcome.status != "unchanged":
                seen = f" (old | new | difference: {outcome.change_picture})" if outcome.change_picture else ""
                warnings.warn(GoldenRecorded(f"{outcome.status} golden {outcome.paths.image}{seen}"), stacklevel=2)
            return
        thresholds = ImageThresholds(ssim_min=ssim_min, psnr_min=psnr_min, max_abs=max_abs)
        try:
            result = compare_with_golden(self.folder, case, image, thresholds=thresholds)
        except GoldenMissing:
            pytest.fail(
                f"no golden image for '{case}' in {self.folder}; record it with:\n"
                f"    pytest {self.nodeid or ''} --accuracy-update-baselines\n"
                "then review and commit the new files",
                pytrace=False,
            )
        except AccuracyError as exc:
            pytest.fail(f"image regression '{case}': {exc}", pytrace=False)
        if result.passed:
            return
        golden = load_golden(self.folder, case)
        where = self.artifacts_dir / _safe(self.nodeid or self.name)
        written = write_artifacts(where, case, golden.image, to_pixels(image), data_range=golden.data_range)
        files = "\n".join(f"    {role}: {path}" for role, path in written.items())
        pytest.fail(
            f"image '{case}' differs from its golden {golden.paths.image}: {result.message}\n{files}\n"
            "if the change is intended, update the golden with --accuracy-update-baselines",
            pytrace=False,
        )


def artifacts_root(config: pytest.Config) -> Path:
    """``$ACCURACY_ARTIFACTS``, else ``accuracy-artifacts/`` in the pytest rootdir."""
    configured = os.environ.get("ACCURACY_ARTIFACTS")
    return Path(configured) if configured else Path(config.rootpath) / "accuracy-artifacts"


@pytest.fixture
def image_regression(request: pytest.FixtureRequest) -> ImageRegression:
    """Judge images against goldens stored beside the test module (see the module docstring)."""
    module_path = Path(request.node.path)
    return ImageRegression(
        folder=module_path.parent / module_path.stem,
        name=request.node.name,
        artifacts_dir=artifacts_root(request.config),
        update=bool(request.config.getoption("accuracy_update_baselines", default=False)),
        nodeid=request.node.nodeid,
    )
