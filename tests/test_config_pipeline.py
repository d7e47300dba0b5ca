"""The pipeline suite schema: valid suites parse, every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accuracy.config import load_suite
from accuracy.config.pipeline import load_pipeline_spec
from accuracy.errors import ConfigError
from tests.fixtures.tiny_sd import SUITE, chain_pipeline


def spec_of(tmp_path: Path, text: str = SUITE):
    return load_pipeline_spec(load_suite(chain_pipeline(tmp_path, hazard=False, suite_text=text)))


def test_valid_suite(tmp_path):
    spec = spec_of(tmp_path)
    assert list(spec.models) == ["encode", "mid", "head"]
    assert spec.models["mid"] == tmp_path / "models" / "mid.onnx"
    assert isinstance(spec.inputs["x"], np.ndarray) and spec.inputs["x"].shape == (2, 16)
    assert spec.reference.name == "onnxruntime" and spec.candidate.name == "onnxruntime-fp16"
    assert spec.compare.cosine_min == 0.999
    assert spec.candidate_file("mid") == spec.models["mid"]


def test_candidate_models_and_backend_options(tmp_path):
    text = SUITE.replace('backend = "onnxruntime-fp16"\n', 'backend = "onnxruntime-fp16"\nkeep_fp32 = ["ln_pow"]\n'
                         '[candidate.models]\nmid = "models/head.onnx"\n')
    spec = spec_of(tmp_path, text)
    assert spec.candidate.options == {"keep_fp32": ["ln_pow"]}
    assert spec.candidate_file("mid") == tmp_path / "models" / "head.onnx"
    assert spec.candidate_file("encode") == spec.models["encode"]


def test_compare_defaults_to_cosine_only_when_no_bound_is_named(tmp_path):
    assert spec_of(tmp_path, SUITE.replace("cosine_min = 0.999", "")).compare.cosine_min == 0.99
    only_psnr = spec_of(tmp_path, SUITE.replace("cosine_min = 0.999", "psnr_min = 30"))
    assert only_psnr.compare.cosine_min is None and only_psnr.compare.psnr_min == 30.0


@pytest.mark.parametrize("change, where, words", [
    (('entry = "pipeline.py:run"', 'entry = "pipeline.py:run"\ndiffusers = "."'), "pipeline.entry", "exactly one"),
    (('mid = "models/mid.onnx"', 'mid = "models/nope.onnx"'), "pipeline.models.mid", "file not found"),
    (("cosine_min = 0.999", "cosine_minimum = 0.9"), "compare.cosine_minimum", "unknown key"),
    (("cosine_min = 0.999", 'cosine_min = "high"'), "compare.cosine_min", "must be a number"),
    (('backend = "onnxruntime"\n', ""), "reference.backend", "missing required key"),
    (('backend = "onnxruntime-fp16"\n', 'backend = "onnxruntime-fp16"\n[candidate.models]\nbogus = "x.onnx"\n'),
     "candidate.models.bogus", ""),
    (('x = "inputs/x.npy"', 'x = "inputs/missing.npy"'), "pipeline.inputs.x", "file not found"),
    (('backend = "onnxruntime-fp16"', 'backend = "tensorrt"'), "candidate.backend", "must be one of"),
    (('[compare]', '[converter]\nnope = "a.ini"\n[compare]'), "converter.nope", "no model called"),
    (('[compare]', '[compre]'), "compre", "unknown section [compre]"),
    (("cosine_min = 0.999", "cosine_min = 0.999\ndata_range = 0"), "compare.data_range", "must be > 0"),
])
def test_mistakes_name_file_and_key(tmp_path, change, where, words):
    with pytest.raises(ConfigError) as caught:
        spec_of(tmp_path, SUITE.replace(*change))
    message = str(caught.value)
    assert str(tmp_path / "suite.toml") in message and f"[{where}]" in message and words in message


def test_unreadable_input_names_the_key(tmp_path):
    suite = chain_pipeline(tmp_path, hazard=False)
    (tmp_path / "inputs" / "x.npy").write_text("not numpy")
    with pytest.raises(ConfigError, match=r"\[pipeline.inputs.x\]: cannot read"):
        load_pipeline_spec(load_suite(suite))


def test_diffusers_folder_needs_model_index(tmp_path):
    (tmp_path / "empty").mkdir()
    text = SUITE.replace('entry = "pipeline.py:run"', 'diffusers = "empty"')
    with pytest.raises(ConfigError, match="no model_index.json"):
        spec_of(tmp_path, text)


def test_config_and_goldens_share_one_name_rule():
    from accuracy.config import pipeline
    from accuracy.goldens import NAME_PATTERN

    assert pipeline.NAME_PATTERN is NAME_PATTERN


def test_compare_outputs_tables_give_one_output_its_own_criteria(tmp_path):
    text = SUITE + "[compare.outputs.y]\nmax_abs = 0.5\n[compare.outputs.z]\ncer_max = 0.02\nwer_max = 0.1\n"
    compare = spec_of(tmp_path, text).compare
    assert compare.cosine_min == 0.999 and compare.outputs == ()
    own = compare.for_output("y")
    assert own.max_abs == 0.5 and own.cosine_min is None and own.named == ("max_abs",)  # replaces, not merges
    assert compare.for_output("z").cer_max == 0.02 and compare.for_output("z").wer_max == 0.1
    assert compare.for_output("other") is compare


def test_text_bounds_alone_keep_the_default_check_for_floats(tmp_path):
    compare = spec_of(tmp_path, SUITE.replace("cosine_min = 0.999", "cer_max = 0.05")).compare
    assert compare.cer_max == 0.05 and compare.cosine_min == 0.99


@pytest.mark.parametrize("extra, key, words", [
    ("[compare.outputs.y]\n", "compare.outputs.y", "name at least one criterion"),
    ("[compare.outputs.y]\ncosine_minimum = 0.9\n", "compare.outputs.y.cosine_minimum", "unknown key"),
    ("[compare.outputs.y]\ncer_max = -1\n", "compare.outputs.y.cer_max", "must be >= 0"),
    ("[compare.outputs.y]\nexact = 1\n", "compare.outputs.y.exact", "must be"),
    ("[compare.outputs]\ny = 0.5\n", "compare.outputs.y", "must be"),
    ("[compare.outputs.y]\ncosine_min = 2\n", "compare.outputs.y.cosine_min", "must be <= 1"),  # failed every run
    ("[compare.outputs.y]\nssim_min = 1.5\n", "compare.outputs.y.ssim_min", "must be <= 1"),
])
def test_compare_outputs_mistakes_name_the_key(tmp_path, extra, key, words):
    with pytest.raises(ConfigError) as caught:
        spec_of(tmp_path, SUITE + extra)
    assert caught.value.where == key and words in caught.value.message
