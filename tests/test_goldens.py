"""Golden outputs: record explicitly, read back verified, compare, and never replace silently."""

from __future__ import annotations

import numpy as np
import pytest

from accuracy.compare.criteria import Criteria
from accuracy.compare.images import ImageThresholds
from accuracy.errors import InputError
from accuracy.goldens import (
    GoldenChanged,
    GoldenMissing,
    check_golden,
    compare_with_golden,
    load_golden,
    record_golden,
)
from accuracy.imageio import read_image
from accuracy.io import read_json
from tests.image_data import landscape, with_noise

PROVENANCE = {"prompt": "A fantasy landscape, trending on artstation", "seed": 0, "steps": 4, "strength": 0.75,
              "guidance": 7.5, "scheduler": "PNDMScheduler", "backend": "onnxruntime"}


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "baselines" / "tiny-sd"


def test_record_then_load_round_trips_with_a_complete_sidecar(folder):
    image, latents = landscape(32), np.random.default_rng(0).normal(size=(1, 4, 4, 4)).astype(np.float32)
    outcome = record_golden(folder, "landscape", image, latents=latents, provenance=PROVENANCE)
    assert outcome.status == "new"
    assert sorted(p.name for p in folder.iterdir()) == ["landscape.json", "landscape.latents.npy", "landscape.png"]
    golden = load_golden(folder, "landscape")
    np.testing.assert_array_equal(golden.image, image)
    np.testing.assert_array_equal(golden.latents, latents)
    sidecar = read_json(folder / "landscape.json")
    assert sidecar["provenance"]["prompt"] == PROVENANCE["prompt"]
    assert sidecar["provenance"]["size"] == [32, 32]
    assert set(sidecar["tool_versions"]) >= {"numpy", "scikit-image", "pillow"}
    assert len(sidecar["image_sha256"]) == 64 and len(sidecar["latents_sha256"]) == 64


def test_float_images_are_stored_as_8_bit(folder):
    floats = landscape(16).astype(np.float64) / 255
    record_golden(folder, "f", floats, provenance={})
    assert read_image(folder / "f.png").array.dtype == np.uint8
    assert compare_with_golden(folder, "f", floats).details["metrics"]["max_abs"] == 0


def test_missing_golden_says_how_to_record_it(folder):
    with pytest.raises(GoldenMissing, match="accuracy baseline record") as info:
        compare_with_golden(folder, "nothing", landscape(16))
    assert "nothing.png" in str(info.value)


def test_same_output_is_unchanged_and_a_changed_one_needs_force(folder, tmp_path):
    image = landscape(32)
    record_golden(folder, "c", image, provenance=PROVENANCE)
    sidecar_before = (folder / "c.json").read_bytes()
    assert record_golden(folder, "c", image.copy(), provenance=PROVENANCE).status == "unchanged"
    assert (folder / "c.json").read_bytes() == sidecar_before
    changed = with_noise(image, 10.0)
    with pytest.raises(GoldenChanged, match="--force") as info:
        record_golden(folder, "c", changed, provenance=PROVENANCE, changes_dir=tmp_path / "changes")
    picture = tmp_path / "changes" / "tiny-sd" / "c.golden-change.png"
    assert str(picture) in str(info.value) and picture.exists()
    np.testing.assert_array_equal(load_golden(folder, "c").image, image)  # untouched
    outcome = record_golden(folder, "c", changed, provenance=PROVENANCE, force=True, changes_dir=tmp_path / "changes")
    assert outcome.status == "replaced" and outcome.change_picture == picture
    assert outcome.comparison is not None and outcome.comparison.ssim < 1
    np.testing.assert_array_equal(load_golden(folder, "c").image, changed)
    old_new_diff = read_image(picture).array
    assert old_new_diff.shape[1] > 3 * 32  # three panels side by side


def test_compare_judges_near_and_far_and_writes_artifacts(folder, tmp_path):
    image = landscape(64)
    record_golden(folder, "c", image, provenance=PROVENANCE)
    near = compare_with_golden(folder, "c", with_noise(image, 0.5))
    assert near.passed and near.name == "c" and "ssim" in near.message
    far = compare_with_golden(folder, "c", with_noise(image, 20.0), artifacts_dir=tmp_path / "art")
    assert not far.passed and "ssim" in far.message
    assert far.details["metrics"]["psnr"] < 30
    for role in ("expected", "obtained", "diff"):
        assert (tmp_path / "art" / f"c.{role}.png").exists()
        assert far.details["images"][role].endswith(f"c.{role}.png")
    strict = compare_with_golden(folder, "c", with_noise(image, 0.5), thresholds=ImageThresholds(ssim_min=0.99999))
    assert not strict.passed


def test_latents_are_judged_when_both_sides_have_them(folder):
    image = landscape(16)
    latents = np.random.default_rng(1).normal(size=(4, 8, 8))
    record_golden(folder, "l", image, latents=latents, provenance={})
    assert compare_with_golden(folder, "l", image, latents=latents + 1e-6).passed
    bad = compare_with_golden(folder, "l", image, latents=-latents)
    assert not bad.passed and "latents cosine" in bad.message
    loose = compare_with_golden(folder, "l", image, latents=-latents, latent_criteria=Criteria(cosine_min=None))
    assert loose.passed


def test_non_finite_output_fails_instead_of_crashing(folder):
    record_golden(folder, "n", landscape(16), provenance={})
    broken = landscape(16).astype(np.float64) / 255
    broken[2, 2] = np.nan
    result = compare_with_golden(folder, "n", broken)
    assert not result.passed and "non-finite" in result.message


def test_size_change_and_tampering_are_input_errors(folder):
    record_golden(folder, "s", landscape(32), provenance={})
    with pytest.raises(InputError, match="golden is"):
        compare_with_golden(folder, "s", landscape(16))
    data = bytearray((folder / "s.png").read_bytes())
    (folder / "s.png").write_bytes(bytes(data) + b"\x00")
    with pytest.raises(InputError, match="sha256"):
        load_golden(folder, "s")


def test_case_names_must_be_file_safe(folder):
    with pytest.raises(InputError, match="case name"):
        record_golden(folder, "../escape", landscape(8), provenance={})


def test_check_golden_records_only_when_asked_and_says_so(folder, tmp_path):
    image = landscape(32)
    with pytest.raises(GoldenMissing):
        check_golden(folder, "k", image, provenance=PROVENANCE)
    recorded = check_golden(folder, "k", image, provenance=PROVENANCE, update=True)
    assert recorded.passed and recorded.message.startswith("recorded a new golden")
    assert check_golden(folder, "k", image, provenance=PROVENANCE).passed
    far = with_noise(image, 25.0)
    assert not check_golden(folder, "k", far, provenance=PROVENANCE).passed
    replaced = check_golden(folder, "k", far, provenance=PROVENANCE, update=True, artifacts_dir=tmp_path / "a")
    assert replaced.details["golden_status"] == "replaced" and "old | new | difference" in replaced.message
    assert (tmp_path / "a" / "tiny-sd" / "k.golden-change.png").exists()
    assert check_golden(folder, "k", far, provenance=PROVENANCE).passed


def _img2img(folder, *, seed: int = 0) -> np.ndarray:
    """The guide's pipeline (diffusers' ONNX img2img on onnxruntime's CPU provider), fixed seed."""
    from diffusers import OnnxStableDiffusionImg2ImgPipeline
    from PIL import Image

    from accuracy.demo.tiny_sd import INIT_IMAGE, PROMPT

    pipe = OnnxStableDiffusionImg2ImgPipeline.from_pretrained(
        str(folder), provider="CPUExecutionProvider", safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    sketch = Image.open(folder / INIT_IMAGE).convert("RGB")
    result = pipe(prompt=PROMPT, image=sketch, strength=0.75, guidance_scale=7.5, num_inference_steps=4,
                  generator=np.random.RandomState(seed), output_type="np")
    return result.images


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # diffusers deprecates its ONNX pipelines, still the guide's
def test_tiny_stable_diffusion_passes_its_golden_and_a_broken_unet_fails(tmp_path, tiny_sd_clean):
    pytest.importorskip("diffusers")
    import shutil

    import onnx
    from onnx import numpy_helper

    from accuracy.demo.tiny_sd import IMAGE_SIZE, PROMPT

    pipeline = tiny_sd_clean
    provenance = {**PROVENANCE, "prompt": PROMPT, "steps": 4, "backend": "onnxruntime"}
    folder = tmp_path / "baselines" / "tiny-sd"
    reference = _img2img(pipeline)
    check_golden(folder, "fantasy_landscape", reference, provenance=provenance, update=True)
    assert read_json(folder / "fantasy_landscape.json")["provenance"]["size"] == [IMAGE_SIZE, IMAGE_SIZE]
    again = check_golden(folder, "fantasy_landscape", _img2img(pipeline), provenance=provenance)
    assert again.passed and again.details["metrics"]["psnr"] > 60  # deterministic: inf in practice

    broken = tmp_path / "broken"
    shutil.copytree(pipeline, broken)
    unet = onnx.load(str(broken / "unet" / "model.onnx"))
    for tensor in unet.graph.initializer:
        if tensor.name == "conv_in.weight":  # the noisy latent now drowns what the unet reads from the text
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * 30000.0, tensor.name))
    onnx.save(unet, str(broken / "unet" / "model.onnx"))
    result = check_golden(folder, "fantasy_landscape", _img2img(broken), provenance=provenance,
                          artifacts_dir=tmp_path / "artifacts")
    assert not result.passed and "ssim" in result.message, result.message
    assert (tmp_path / "artifacts" / "fantasy_landscape.diff.png").exists()


def test_an_unreadable_golden_is_overwritten_only_with_force(folder):
    record_golden(folder, "u", landscape(16), provenance={})
    (folder / "u.png").write_bytes(b"broken")
    with pytest.raises(InputError, match="unreadable.*--force"):
        record_golden(folder, "u", landscape(16), provenance={})
    assert record_golden(folder, "u", landscape(16), provenance={}, force=True).status == "replaced"
    np.testing.assert_array_equal(load_golden(folder, "u").image, landscape(16))


def test_latents_only_change_is_named_and_missing_latents_noted(folder):
    latents = np.ones((2, 4, 4), np.float32)
    record_golden(folder, "l", landscape(16), latents=latents, provenance={})
    with pytest.raises(GoldenChanged, match=r"\(latents\)"):
        record_golden(folder, "l", landscape(16), latents=latents * 2, provenance={})
    result = compare_with_golden(folder, "l", landscape(16))
    assert result.passed and "only the image was judged" in result.details["notes"][0]
    assert read_json(folder / "l.json")["tool_versions"]["python"].count(".") == 2


def _fail_replacing(monkeypatch, target, *, then_everything: bool = False):
    """``os.replace`` fails when it would move ``target`` in; with ``then_everything`` every later call
    fails too, as if the process had died there (no clean-up can run)."""
    import os

    real, dead = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if dead or str(dst) == str(target):
            dead.extend([True] if then_everything else [])
            raise OSError(28, "No space left on device")
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("new_latents", [np.full((2, 4, 4), 3.0, np.float32), None], ids=["latents", "no-latents"])
@pytest.mark.parametrize("then_everything", [False, True], ids=["error", "crash"])
def test_a_replacement_that_fails_before_its_sidecar_leaves_the_old_golden_loadable(
        folder, monkeypatch, new_latents, then_everything):
    old_image, old_latents = landscape(16), np.ones((2, 4, 4), np.float32)
    record_golden(folder, "r", old_image, latents=old_latents, provenance={"seed": 1})
    new_image = with_noise(old_image, 30.0)
    _fail_replacing(monkeypatch, folder / "r.json", then_everything=then_everything)
    with pytest.raises(InputError, match="No space left"):
        record_golden(folder, "r", new_image, latents=new_latents, provenance={"seed": 2}, force=True)
    old = load_golden(folder, "r")
    np.testing.assert_array_equal(old.image, old_image)
    np.testing.assert_array_equal(old.latents, old_latents)
    assert old.provenance["seed"] == 1
    monkeypatch.undo()
    # the next recording starts from the old golden (a changed one still needs force) and completes
    with pytest.raises(GoldenChanged):
        record_golden(folder, "r", new_image, latents=new_latents, provenance={"seed": 2})
    record_golden(folder, "r", new_image, latents=new_latents, provenance={"seed": 2}, force=True)
    new = load_golden(folder, "r")
    np.testing.assert_array_equal(new.image, new_image)
    assert new.provenance["seed"] == 2 and (new.latents is None) == (new_latents is None)
    expected = ["r.json", "r.png"] + (["r.latents.npy"] if new_latents is not None else [])
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)  # a stale latents file went last


def test_a_clean_error_puts_the_old_files_back(folder, monkeypatch):
    record_golden(folder, "b", landscape(16), provenance={})
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    _fail_replacing(monkeypatch, folder / "b.json")
    with pytest.raises(InputError, match=r"b\.json"):
        record_golden(folder, "b", with_noise(landscape(16), 30.0), latents=np.ones(3), provenance={}, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing staged or kept is left
