"""The ``image_regression`` fixture in a real pytest run (pytester): a missing golden fails saying how
to record it, only the update flag records, near images pass, far ones fail with files for CI."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import os

import numpy as np
import pytest


def picture(sigma):
    y, x = np.mgrid[0:48, 0:48] / 48
    image = np.stack([0.3 + 0.5 * y, 0.5 + 0.3 * np.sin(8 * x), 0.9 - 0.4 * y], -1) * 255
    noise = np.random.default_rng(0).normal(0.0, sigma, image.shape)
    return np.clip(np.round(image + noise), 0, 255).astype(np.uint8)


def test_landscape(image_regression):
    image_regression.check(picture(float(os.environ.get("SIGMA", "0"))))


def test_from_a_file(image_regression, tmp_path):
    from PIL import Image

    path = tmp_path / "out.png"
    Image.fromarray(picture(float(os.environ.get("SIGMA", "0")))).save(path)
    image_regression.check(path, basename="test_landscape")  # the same golden as test_landscape


@pytest.mark.parametrize("seed", [1, 2])
def test_two_images(image_regression, seed):
    sigma = float(os.environ.get("SIGMA", "0"))
    image_regression.check(picture(sigma), basename=f"first-{seed}")
    image_regression.check(picture(sigma) // 2, basename=f"second-{seed}", ssim_min=0.5, psnr_min=None)
'''


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makepyfile(test_user=USER_TESTS)
    monkeypatch.setenv("ACCURACY_ARTIFACTS", str(pytester.path / "artifacts"))
    monkeypatch.delenv("SIGMA", raising=False)
    return pytester


def _run(pytester, *args: str):
    return pytester.runpytest("-p", "accuracy.testing.image_regression", "-p", "no:cacheprovider", *args)


def test_missing_golden_fails_with_the_way_to_record_it(project):
    result = _run(project)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*no golden image for 'test_landscape'*", "*--accuracy-update-baselines*"])
    assert not (project.path / "test_user").exists()  # nothing recorded without the flag


def test_update_records_then_plain_runs_judge(project, monkeypatch):
    _run(project, "--accuracy-update-baselines").assert_outcomes(passed=4, warnings=5)
    goldens = project.path / "test_user"
    assert sorted(p.name for p in goldens.glob("*.png")) == [
        "first-1.png", "first-2.png", "second-1.png", "second-2.png", "test_landscape.png"]
    assert (goldens / "test_landscape.json").exists()

    _run(project).assert_outcomes(passed=4)
    monkeypatch.setenv("SIGMA", "0.5")
    _run(project).assert_outcomes(passed=4)  # near: within SSIM/PSNR thresholds

    monkeypatch.setenv("SIGMA", "25")
    result = _run(project)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*image 'test_landscape' differs from its golden*ssim*", "*diff: *.diff.png*"])
    artifacts = project.path / "artifacts"
    assert len(list(artifacts.rglob("test_landscape.diff.png"))) == 2  # test_landscape and test_from_a_file
    assert len(list(artifacts.rglob("*.obtained.png"))) == 4  # the far 'first' images; 'second' passes its loose bound


def test_update_replaces_a_changed_golden_and_shows_the_change(project, monkeypatch):
    _run(project, "--accuracy-update-baselines", "-k", "landscape").assert_outcomes(passed=1)
    before = (project.path / "test_user" / "test_landscape.png").read_bytes()
    monkeypatch.setenv("SIGMA", "25")
    result = _run(project, "--accuracy-update-baselines", "-k", "landscape")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*replaced golden*old | new | difference*"])
    assert (project.path / "test_user" / "test_landscape.png").read_bytes() != before
    assert list((project.path / "artifacts").rglob("test_landscape.golden-change.png"))
    monkeypatch.setenv("SIGMA", "0")
    _run(project, "-k", "landscape").assert_outcomes(failed=1)  # the golden is the noisy one now
