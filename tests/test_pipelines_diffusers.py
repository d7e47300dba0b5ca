"""The tiny SD img2img folder through diffusers' own OnnxStableDiffusionImg2ImgPipeline, per-model backends."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the tiny SD pipeline needs the diffusers extra")

from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.demo.story import write_demo_suite
from accuracy.demo.tiny_sd import IMAGE_SIZE
from accuracy.pipelines.recording import Recording
from accuracy.pipelines.runner import CANDIDATE, PipelineRunner
from accuracy.pipelines.suite import run_suite

pytestmark = pytest.mark.slow  # builds the tiny pipeline once per cache (~15 s)


@pytest.fixture(scope="module")
def runner(tiny_sd):
    spec = load_pipeline_spec(load_suite(write_demo_suite(tiny_sd)))
    runner = PipelineRunner(spec)
    yield runner
    runner.close()


def test_folder_layout_and_models_found(tiny_sd, runner):
    assert (tiny_sd / "model_index.json").exists() and (tiny_sd / "tokenizer" / "vocab.json").exists()
    assert runner.models == ["text_encoder", "unet", "vae_encoder", "vae_decoder"]
    assert list(runner.random) == ["vae_encoder"]  # diffusers' export samples with RandomNormalLike


def test_reference_run_records_every_call_and_is_reproducible(runner):
    recording = Recording()
    first = runner.record(recording)
    assert first["image"].shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and 0 <= first["image"].min() <= first["image"].max() <= 1
    calls = [(c.model, c.index) for c in recording.calls]
    assert calls[:3] == [("text_encoder", 0), ("text_encoder", 1), ("vae_encoder", 0)]
    assert sum(1 for m, _ in calls if m == "unet") == 4  # int(4 steps x strength 0.75) + steps_offset 1
    timestep = recording.feeds(recording.of("unet")[0])["timestep"]
    assert timestep.dtype == np.float32  # read from unet.model.get_inputs(), as diffusers does
    again = runner.run()
    np.testing.assert_array_equal(first["image"], again["image"])  # seeded vae_encoder: same image
    recording.close()


def test_candidate_sides_change_the_image(runner):
    reference = runner.run()
    text_fp16 = runner.run({"text_encoder": CANDIDATE})
    assert not np.array_equal(reference["image"], text_fp16["image"])


def test_gate_runner_fails_the_planted_pipeline(tiny_sd):
    result = run_suite(load_suite(write_demo_suite(tiny_sd)))
    assert result.verdict == "fail" and result.checks[0].name == "image"
    assert "psnr" in result.checks[0].message and "accuracy bisect" in result.checks[0].message


def test_text_to_image_folder_runs_through_the_text2img_pipeline(tiny_sd, tmp_path):
    import json

    folder = tmp_path / "txt2img"
    folder.mkdir()
    for part in ("text_encoder", "unet", "vae_decoder", "tokenizer", "scheduler"):
        (folder / part).symlink_to(tiny_sd / part)
    index = json.loads((tiny_sd / "model_index.json").read_text())
    index["_class_name"] = "OnnxStableDiffusionPipeline"
    index.pop("vae_encoder")
    (folder / "model_index.json").write_text(json.dumps(index))
    suite = tmp_path / "suite.toml"
    suite.write_text('[pipeline]\ndiffusers = "txt2img"\n[pipeline.inputs]\nprompt = "a hill"\nheight = 64\n'
                     'width = 64\nnum_inference_steps = 2\n[reference]\nbackend = "onnxruntime"\n'
                     '[candidate]\nbackend = "onnxruntime"\n')
    runner = PipelineRunner(load_pipeline_spec(load_suite(suite)))
    first, second = runner.run(), runner.run({"unet": CANDIDATE})
    assert runner.models == ["text_encoder", "unet", "vae_decoder"] and not runner.random
    assert first["image"].ndim == 4 and first["image"].shape[-1] == 3
    np.testing.assert_array_equal(first["image"], second["image"])  # same backend, seeded latents
    runner.close()
