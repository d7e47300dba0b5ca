"""`accuracy demo`: the tiny SD pipeline with its planted outlier is blamed on text_encoder;
the clean twin (same seed, no outlier) is blamed on nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the tiny SD pipeline needs the diffusers extra")

from accuracy.bisect.bisector import bisect_pipeline
from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.demo import story
from accuracy.demo import tiny_sd as tiny_sd_module
from accuracy.demo.story import write_demo_suite

pytestmark = pytest.mark.slow  # ~20-40 s: builds/reuses two tiny pipelines and bisects each


@pytest.fixture(scope="module")
def demo(tiny_sd):
    return story.run_demo(progress=lambda text: None, folder=tiny_sd)


def test_demo_blames_text_encoder(demo):
    result, _ = demo
    assert result["verdict"] == "fail"
    assert result["culprits"] == ["text_encoder"]
    text = result["models"]["text_encoder"]
    assert text["isolated"]["verdict"] == "fail" and text["isolated"]["cosine"] < 0.5
    assert text["leave_out"]["passed"]  # everything else in fp16 is fine
    assert [g["gear"] for g in text["isolated"]["gears"]] == ["input_ids:1,77", "input_ids:1,33"]
    assert result["models"]["vae_encoder"]["random_ops"][0]["op_type"] == "RandomNormalLike"
    assert result["noise_floor"]["passed"]
    # localize and the repair ran through bisect's own --localize --suggest-fp32 path
    assert text["localize"]["first_divergent"]["op_type"] == "Pow" and text["localize"]["stand_in"] is None
    assert text["localize"]["repair"]["passed"] and result["repair"]["passed"]
    # the keep-list applied by the real converter, run in plain ONNX Runtime in the pipeline, passes too
    deployed = text["localize"]["repair"]["repaired_model"]
    assert deployed["passed"] and deployed["pipeline"]["passed"] and "node_block_list" in deployed["converter"]


def test_demo_story_says_which_how_far_why(demo):
    result, text = demo
    assert "CULPRIT: text_encoder" in text
    assert "planted" in text.lower() and "65504" in text
    assert "precision_mode=enforce_fp32" in text
    psnr = result["models"]["text_encoder"]["swap_in"]["metrics"]["psnr"]
    assert f"{psnr:.1f} dB" in text
    assert "astronaut" in text and "near-identity" in text  # how the pipeline was built


def test_demo_story_explains_gears_reconciles_the_operators_and_says_what_next(demo):
    result, text = demo
    assert "input shapes, 'gears' (ge.dynamicDims)" in text and "gear input_ids:1,77: fail" in text
    first = result["models"]["text_encoder"]["localize"]["first_divergent"]["node"]
    kept = result["models"]["text_encoder"]["localize"]["repair"]["keep_fp32"]
    assert f"the error ENTERS at {first}" in text and f"KEEP IN FP32: {kept[0]}" in text
    if first not in kept:  # where error enters is not what must stay fp32: the story says why
        assert f"Why not {first}, where the error enters?" in text
    assert "[candidate.keep_fp32]" in text and "accuracy bisect my-pipeline.toml --localize --suggest-fp32" in text
    assert [step["title"] for step in result["story"]][-1].startswith("Next")


def test_the_fp32_picture_is_recognisably_the_photo_and_fp16_damages_it(tiny_sd, tmp_path):
    """SSIM against the input photo: the fp32 reference keeps it (softened by the half-resolution
    latent), the all-fp16 candidate clearly does not."""
    from PIL import Image
    from skimage.metrics import structural_similarity

    result, _ = story.run_demo(progress=lambda text: None, folder=tiny_sd, localize=False, pictures_dir=tmp_path)
    photo = np.asarray(Image.open(tiny_sd / tiny_sd_module.INIT_IMAGE).convert("RGB"))
    pictures = result["pictures"]["image"]

    def ssim(name: str) -> float:
        return structural_similarity(photo, np.asarray(Image.open(pictures[name]).convert("RGB")), channel_axis=2)

    assert ssim("reference") > 0.7
    assert ssim("all_candidate") < ssim("reference") - 0.1


def test_clean_twin_blames_nobody(tiny_sd_clean):
    result = bisect_pipeline(load_pipeline_spec(load_suite(write_demo_suite(tiny_sd_clean))))
    assert result["verdict"] == "pass" and result["culprits"] == []
    assert result["models"]["text_encoder"]["isolated"]["verdict"] == "pass"


def test_cli_demo_json_is_the_bisect_json_and_writes_a_report(tiny_sd, tmp_path, monkeypatch, capsys):
    from accuracy.cli import main

    monkeypatch.setattr(tiny_sd_module, "build_tiny_sd", lambda **kw: tiny_sd)
    out, report = tmp_path / "demo.json", tmp_path / "demo.html"
    assert main(["demo", "--json", str(out), "--report", str(report), "--quiet"]) == 1
    data = json.loads(out.read_text())
    assert data["culprits"] == ["text_encoder"] and set(data["models"]) == set(tiny_sd_module.MODELS)
    assert report.exists() and "text_encoder" in report.read_text()
    # the pictures people look at: reference, all-fp16 and the culprit's swap-in images, in the report
    pictures = data["pictures"]["image"]
    assert set(pictures) == {"reference", "all_candidate", "swap_in:text_encoder"}
    assert all(Path(path).exists() for path in pictures.values())
    page = report.read_text()
    assert "against all models on the candidate" in page and "against only text_encoder" in page
    assert page.count("data:image/png") >= 6  # 2 x (expected, obtained, heat map) at least
    # the whole story, once titled: culprit, operator, why, the verified fix to copy, what next
    assert page.count("<h1>") == 1 and page.count("accuracy demo: tiny Stable Diffusion") == 2  # <title>, <h1>
    kept = data["models"]["text_encoder"]["localize"]["repair"]["keep_fp32"]
    for needle in ("CULPRIT: text_encoder", data["models"]["text_encoder"]["localize"]["first_divergent"]["node"],
                   "65504", f"KEEP IN FP32: {kept[0]}", "[candidate.keep_fp32]", "precision_mode=enforce_fp32",
                   "accuracy bisect my-pipeline.toml"):
        assert needle in page, needle
    for role in ("input", "reference", "candidate", "difference"):
        assert f'<figure data-role="{role}"><img src="data:image/png' in page, role
    printed = capsys.readouterr().out
    assert "CULPRIT: text_encoder" in printed and str(report) in printed
    assert (report.parent / "demo.localize" / "text_encoder" / "model_fp16_repaired.onnx").exists()
