"""Judging a fresh output against its golden: image metrics (and latents) against thresholds, as one
``CheckResult``, with the expected/obtained/difference pictures for people and CI to look at.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accuracy.compare.criteria import Criteria, compare_output
from accuracy.compare.images import ImageThresholds, compare_images
from accuracy.errors import InputError
from accuracy.goldens.store import RECORD_HINT, load_golden, record_golden
from accuracy.imageio import to_pixels, write_png
from accuracy.io import write_bytes_atomic
from accuracy.results import CheckResult

DEFAULT_IMAGE_THRESHOLDS = ImageThresholds()
DEFAULT_LATENT_CRITERIA = Criteria()  # cosine >= 0.99, non-finite values by compare's rule


def write_artifacts(
    folder: str | Path, case: str, expected: np.ndarray, obtained: np.ndarray, *, data_range: float
) -> dict[str, Path]:
    """Write ``case.expected.png``, ``case.obtained.png`` and ``case.diff.png`` (the triptych) for
    people and CI to look at; returns their paths by role."""
    from accuracy.report.pictures import png_bytes, triptych

    folder = Path(folder)
    written = {
        "expected": write_png(folder / f"{case}.expected.png", expected),
        "obtained": write_png(folder / f"{case}.obtained.png", obtained),
    }
    if expected.shape == obtained.shape:
        picture = triptych(expected, obtained, data_range=data_range)
        written["diff"] = write_bytes_atomic(folder / f"{case}.diff.png", png_bytes(picture))
    return written


def compare_with_golden(
    folder: str | Path,
    case: str,
    image: Any,
    *,
    latents: np.ndarray | None = None,
    thresholds: ImageThresholds = DEFAULT_IMAGE_THRESHOLDS,
    latent_criteria: Criteria = DEFAULT_LATENT_CRITERIA,
    artifacts_dir: str | Path | None = None,
) -> CheckResult:
    """Judge a fresh output against the golden of ``case``: image metrics (and latents, when both
    sides have them) against the thresholds, as one ``CheckResult`` named after the case. Latents are
    judged by ``compare``'s one rule under ``latent_criteria`` (a pipeline suite passes its
    ``[compare.outputs.<latents>]``, else its ``[compare]``).

    With ``artifacts_dir`` the expected/obtained/difference pictures are written there and named in
    ``details["images"]`` (the HTML report shows them). A missing golden raises ``GoldenMissing``.
    """
    golden = load_golden(folder, case)
    details: dict[str, Any] = {"case": case, "golden": str(golden.paths.image)}
    array = np.asarray(image) if not hasattr(image, "mode") else image
    if isinstance(array, np.ndarray) and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        count = int(array.size - np.count_nonzero(np.isfinite(array)))
        return CheckResult(case, False, f"obtained image holds {count} non-finite values",
                           {**details, "failures": [f"{count} non-finite values"]})
    try:
        pixels = to_pixels(image)
    except ValueError as exc:
        raise InputError(f"case '{case}': {exc}", path=golden.paths.image) from None
    if pixels.shape != golden.image.shape:
        raise InputError(f"obtained image is {pixels.shape} but the golden is {golden.image.shape}; "
                         f"if the size changed on purpose, {RECORD_HINT}", path=golden.paths.image)
    expected, obtained, data_range = golden.image, pixels, golden.data_range
    if expected.dtype != obtained.dtype:  # e.g. a 16-bit golden and an 8-bit run: compare in 0..1
        expected = expected / golden.data_range
        obtained = obtained / float(np.iinfo(obtained.dtype).max)
        data_range = 1.0
    comparison = compare_images(expected, obtained, data_range=data_range, thresholds=thresholds)
    details.update(comparison.to_dict())
    failures = list(comparison.failures)
    if latents is not None and golden.latents is not None:
        if np.shape(latents) != golden.latents.shape:
            raise InputError(f"obtained latents are {np.shape(latents)} but the golden's are "
                             f"{golden.latents.shape}; {RECORD_HINT}", path=golden.paths.latents)
        latent = compare_output(golden.latents, np.asarray(latents), criteria=latent_criteria)
        details["latents"] = latent
        failures += [f"latents {failure}" for failure in latent["failures"]]
    notes = []
    if latents is not None and golden.latents is None:
        notes.append("the golden has no latents to compare; record it with latents to judge them")
    elif latents is None and golden.latents is not None:
        notes.append("the golden has latents but none were given; only the image was judged")
    details["failures"] = failures
    details["notes"] = notes
    details.pop("passed", None)
    if artifacts_dir is not None:
        details["images"] = {role: str(path) for role, path in write_artifacts(
            Path(artifacts_dir), case, golden.image, pixels, data_range=golden.data_range).items()}
    if failures:
        message = "; ".join(failures)
    else:
        message = f"ssim {comparison.ssim:.4f}, psnr {comparison.psnr:.2f} dB, max_abs {comparison.max_abs:.4g}"
    return CheckResult(case, not failures, message, details)


def check_golden(
    folder: str | Path,
    case: str,
    image: Any,
    *,
    provenance: Mapping[str, Any],
    latents: np.ndarray | None = None,
    update: bool = False,
    thresholds: ImageThresholds = DEFAULT_IMAGE_THRESHOLDS,
    latent_criteria: Criteria = DEFAULT_LATENT_CRITERIA,
    artifacts_dir: str | Path | None = None,
) -> CheckResult:
    """What a suite runner calls per case: compare with the golden, or, with ``update=True`` (the
    explicit ``accuracy baseline record`` / ``--accuracy-update-baselines``), record it.

    Recording returns a passing check whose message says what happened ("recorded", "unchanged",
    "replaced" with the old | new | difference picture), so an update run is never silent.
    """
    if not update:
        return compare_with_golden(folder, case, image, latents=latents, thresholds=thresholds,
                                   latent_criteria=latent_criteria, artifacts_dir=artifacts_dir)
    outcome = record_golden(folder, case, image, latents=latents, provenance=provenance, force=True,
                            changes_dir=artifacts_dir)
    words = {"new": "recorded a new golden", "unchanged": "golden unchanged", "replaced": "replaced the golden"}
    message = f"{words[outcome.status]} {outcome.paths.image}"
    details: dict[str, Any] = {"case": case, "golden": str(outcome.paths.image), "golden_status": outcome.status}
    if outcome.change_picture is not None:
        message += f" (old | new | difference: {outcome.change_picture})"
        details["images"] = {"diff": str(outcome.change_picture)}
    if outcome.comparison is not None:
        details["metrics"] = outcome.comparison.metrics()
    return CheckResult(case, True, message, details)
