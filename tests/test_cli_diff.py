"""``accuracy diff`` as a user types it: identical / near / far pairs, PSNR equal to scikit-image's,
pictures, and one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from skimage.metrics import structural_similarity as skimage_ssim

from accuracy.cli import main
from accuracy.imageio import read_image, write_png
from tests.image_data import landscape, save, with_noise


@pytest.fixture
def guide(tmp_path):
    """The guide's pair: the ONNX-on-CPU image and images from a 'device'."""
    image = landscape(64)
    return {
        "expected": save(tmp_path / "fantasy_landscape.png", image),
        "near": save(tmp_path / "fantasy_landscape_npu.png", with_noise(image, 0.5)),
        "far": save(tmp_path / "broken_npu.png", with_noise(image, 20.0)),
        "array": image,
    }


def _diff(*argv: str) -> int:
    return main(["diff", *map(str, argv)])


def test_identical_images_pass_with_infinite_psnr(guide, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert _diff(guide["expected"], guide["expected"], "--json", out) == 0
    result = json.loads(out.read_text())
    assert result["verdict"] == "pass"
    assert result["metrics"]["psnr"] == "inf" and result["metrics"]["ssim"] == 1.0
    assert "inf dB" in capsys.readouterr().out


def test_near_pair_passes_and_its_psnr_matches_scikit_image(guide, tmp_path):
    out = tmp_path / "r.json"
    assert _diff(guide["expected"], guide["near"], "--json", out) == 0
    metrics = json.loads(out.read_text())["metrics"]
    a, b = read_image(guide["expected"]).array, read_image(guide["near"]).array
    assert metrics["psnr"] == pytest.approx(skimage_psnr(a, b, data_range=255), rel=1e-12)
    assert metrics["ssim"] == pytest.approx(skimage_ssim(a, b, data_range=255, channel_axis=-1), abs=1e-9)
    assert set(metrics) >= {"ssim", "psnr", "mse", "max_abs", "mean_abs"}


def test_far_pair_fails_and_thresholds_move_the_verdict(guide, tmp_path, capsys):
    assert _diff(guide["expected"], guide["far"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: ssim" in out and "--diff-image" in out
    assert _diff(guide["expected"], guide["far"], "--ssim-min", "0.2", "--psnr-min", "20") == 0
    assert _diff(guide["expected"], guide["near"], "--max-abs", "0") == 1


def test_diff_image_and_triptych_are_written(guide, tmp_path):
    heat, three = tmp_path / "heat.png", tmp_path / "three.png"
    assert _diff(guide["expected"], guide["far"], "--diff-image", heat, "--triptych", three) == 1
    heat_map, triptych = read_image(heat).array, read_image(three).array
    assert heat_map.shape[1] > heat_map.shape[0]  # the colour bar sits beside the map
    assert triptych.shape[1] > 3 * triptych.shape[0] // 2
    assert heat_map.std() > 10  # not a blank picture


def test_html_report(guide, tmp_path):
    report = tmp_path / "diff.html"
    _diff(guide["expected"], guide["far"], "--report", report)
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 3 and "http://" not in text and "https://" not in text


def test_different_sizes_exit_2_naming_the_file_unless_resized(guide, tmp_path, capsys):
    small = save(tmp_path / "small.png", landscape(32))
    assert _diff(guide["expected"], small) == 2
    err = capsys.readouterr().err.strip()
    assert "small.png" in err and "--resize" in err and len(err.splitlines()) == 1
    big = save(tmp_path / "big.png", landscape(128))
    out = tmp_path / "r.json"
    assert _diff(guide["expected"], big, "--resize", "--ssim-min", "0.9", "--psnr-min", "25", "--json", out) == 0
    assert json.loads(out.read_text())["resized"] is True


@pytest.mark.parametrize("content", [b"", b"garbage", None])
def test_unreadable_files_exit_2_with_one_line(guide, tmp_path, capsys, content):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    assert _diff(guide["expected"], path) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("bound", [("--ssim-min", "nan"), ("--psnr-min", "inf"), ("--max-abs", "nan"),
                                   ("--data-range", "inf")])
def test_non_finite_thresholds_exit_2_with_one_line(guide, capsys, bound):
    assert _diff(guide["expected"], guide["near"], *bound) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bound[0]} must be a finite number" in err


def test_complex_npy_exits_2_naming_the_file(tmp_path, capsys):
    np.save(tmp_path / "ref.npy", np.ones((4, 4), np.float32))
    np.save(tmp_path / "complex.npy", np.ones((4, 4), np.complex64))
    assert _diff(tmp_path / "ref.npy", tmp_path / "complex.npy") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "complex.npy" in err and "Traceback" not in err


def test_truncated_png_exit_2(guide, tmp_path, capsys):
    data = guide["far"].read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert _diff(guide["expected"], cut) == 2
    assert "cut.png" in capsys.readouterr().err


def test_16_bit_and_8_bit_compare_on_a_common_scale(guide, tmp_path):
    deep = write_png(tmp_path / "deep.png", guide["array"].astype(np.uint16) * 257)
    out = tmp_path / "r.json"
    assert _diff(guide["expected"], deep, "--json", out) == 0
    assert json.loads(out.read_text())["metrics"]["max_abs"] == 0


def test_grey_against_rgb_is_refused(guide, tmp_path, capsys):
    grey = save(tmp_path / "grey.png", landscape(64, channels=1))
    assert _diff(guide["expected"], grey) == 2
    assert "grey.png" in capsys.readouterr().err


def test_npy_latents(tmp_path):
    latents = np.random.default_rng(0).normal(size=(1, 4, 16, 16)).astype(np.float32)
    np.save(tmp_path / "ref.npy", latents)
    np.save(tmp_path / "close.npy", latents + np.float32(1e-4))
    np.save(tmp_path / "vector.npy", latents.ravel())
    out = tmp_path / "r.json"
    assert _diff(tmp_path / "ref.npy", tmp_path / "close.npy", "--json", out) == 0
    result = json.loads(out.read_text())
    assert result["metrics"]["cosine"] > 0.9999 and result["metrics"]["ssim"] > 0.99
    np.save(tmp_path / "v1.npy", latents.ravel() + 1e-4)
    assert _diff(tmp_path / "vector.npy", tmp_path / "v1.npy", "--json", out) == 0
    assert json.loads(out.read_text())["metrics"]["ssim"] is None
    assert _diff(tmp_path / "ref.npy", tmp_path / "vector.npy") == 2


def test_console_script_runs(guide):
    process = subprocess.run([sys.executable, "-m", "accuracy", "diff", str(guide["expected"]), str(guide["far"])],
                             check=False, capture_output=True, text=True, timeout=120)
    assert process.returncode == 1 and "ssim" in process.stdout


@pytest.mark.parametrize("shape", [(4,), (16, 16, 3)])
def test_non_finite_values_that_agree_pass_and_one_sided_ones_fail(tmp_path, capsys, shape):
    a = np.random.default_rng(0).random(shape).astype(np.float32)
    a.flat[1] = -np.inf  # an empty reduction, on both sides
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "same.npy", a.copy())
    out = tmp_path / "r.json"
    assert main(["diff", str(tmp_path / "a.npy"), str(tmp_path / "same.npy"), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["psnr"] in (float("inf"), "inf") and metrics["max_abs"] == 0
    b = a.copy()
    b.flat[2] = np.nan
    np.save(tmp_path / "nan.npy", b)
    assert main(["diff", str(tmp_path / "a.npy"), str(tmp_path / "nan.npy"), "--json", str(out)]) == 1
    assert json.loads(out.read_text())["failures"][0].startswith("1 non-finite values on one side only")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32])
def test_wide_integer_arrays_are_judged_on_their_own_range_not_the_dtypes(tmp_path, dtype):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 200, size=(16, 16, 3)).astype(dtype)
    np.save(tmp_path / "ref.npy", labels)
    np.save(tmp_path / "same.npy", labels.astype(np.int64))
    np.save(tmp_path / "scaled.npy", labels.astype(np.float32) / 200)  # another scale: SSIM over 9e18 hid it
    out = tmp_path / "r.json"
    assert _diff(tmp_path / "ref.npy", tmp_path / "same.npy") == 0
    assert _diff(tmp_path / "ref.npy", tmp_path / "scaled.npy", "--json", out) == 1
    result = json.loads(out.read_text())
    assert result["verdict"] == "fail" and result["metrics"]["psnr"] < 30


def test_an_ssim_bound_above_1_is_a_usage_error_not_a_failing_image(guide, capsys):
    assert _diff(guide["expected"], guide["expected"], "--ssim-min", "2") == 2  # identical images 'failed'
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ssim-min must be in [-1, 1]" in err
