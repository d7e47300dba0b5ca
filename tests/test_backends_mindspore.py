"""``mindspore`` backend: real MindIR files (suites/mindspore-chain, exported by MindSpore) on MindSpore's CPU runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mindspore")

from accuracy.backends import get_backend
from accuracy.errors import BackendError, ConfigError, MissingDependencyError

CHAIN = Path(__file__).resolve().parents[1] / "suites" / "mindspore-chain"
MODELS = ("encode", "mid", "decode")


@pytest.fixture(scope="module")
def chain_feeds() -> dict[str, dict[str, np.ndarray]]:
    """Each model's reference input, from a run of the ONNX chain."""
    ort = get_backend("onnxruntime")
    x = np.load(CHAIN / "inputs" / "x.npy")
    (h,) = ort.load(CHAIN / "models" / "encode.onnx").run({"x": x})
    (u,) = ort.load(CHAIN / "models" / "mid.onnx").run({"h": h})
    return {"encode": {"x": x}, "mid": {"h": h}, "decode": {"u": u}}


@pytest.mark.parametrize("name", MODELS)
def test_mindir_fp32_matches_onnx(name, chain_feeds):
    reference = get_backend("onnxruntime").load(CHAIN / "models" / f"{name}.onnx")
    candidate = get_backend("mindspore").load(CHAIN / "mindir" / f"{name}_fp32.mindir", reference=reference)
    assert candidate.input_names == reference.input_names
    assert candidate.output_names == reference.output_names
    (expected,) = reference.run(chain_feeds[name])
    (obtained,) = candidate.run(chain_feeds[name])
    assert obtained.dtype == np.float32 and obtained.shape == expected.shape
    np.testing.assert_allclose(obtained, expected, rtol=1e-5, atol=1e-6)


def test_mindir_fp16_really_computes_in_fp16(chain_feeds):
    ort = get_backend("onnxruntime")
    for name in ("encode", "decode"):  # no hazard: close, but not bit-equal
        reference = ort.load(CHAIN / "models" / f"{name}.onnx")
        (expected,) = reference.run(chain_feeds[name])
        (obtained,) = get_backend("mindspore").load(CHAIN / "mindir" / f"{name}_fp16.mindir",
                                                     reference=reference).run(chain_feeds[name])
        np.testing.assert_allclose(obtained, expected, atol=2e-2)
        assert np.abs(obtained - expected).max() > 0
    reference = ort.load(CHAIN / "models" / "mid.onnx")
    (expected,) = reference.run(chain_feeds["mid"])
    raw = get_backend("mindspore", cast_outputs=False).load(CHAIN / "mindir" / "mid_fp16.mindir", reference=reference)
    (obtained,) = raw.run(chain_feeds["mid"])
    assert obtained.dtype == np.float16  # what the fp16 MindIR really returns
    cosine = float(np.dot(expected.ravel(), obtained.astype(np.float64).ravel())
                   / (np.linalg.norm(expected) * np.linalg.norm(obtained.astype(np.float64)) + 1e-30))
    assert not cosine > 0.99  # the overflowing sum of squares wrecks the normalisation


def test_input_names_option_and_missing_reference(chain_feeds):
    path = CHAIN / "mindir" / "encode_fp32.mindir"
    with pytest.raises(BackendError, match="no input names"):
        get_backend("mindspore").load(path)
    session = get_backend("mindspore", input_names=["x"]).load(path)
    (out,) = session.run(chain_feeds["encode"])
    assert out.shape == (1, 32) and session.output_names == ["output_0"]
    with pytest.raises(ConfigError, match="input_names"):
        get_backend("mindspore", input_names="x").load(path)
    with pytest.raises(ConfigError, match="bogus"):
        get_backend("mindspore", bogus=1).load(path)


def test_unreadable_mindir_is_a_backend_error(tmp_path):
    junk = tmp_path / "junk.mindir"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(BackendError, match="junk.mindir"):
        get_backend("mindspore", input_names=["x"]).load(junk)


def test_missing_mindspore_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore", None)  # as if the extra were not installed
    path = CHAIN / "mindir" / "encode_fp32.mindir"
    with pytest.raises(MissingDependencyError, match=r"pip install 'accuracy\[mindspore\]'"):
        get_backend("mindspore", input_names=["x"]).load(path)


@pytest.mark.slow
def test_build_regenerates_the_committed_numbers(tmp_path, chain_feeds):
    """build.py is deterministic: a fresh build gives the committed models' outputs."""
    subprocess.run([sys.executable, str(CHAIN / "build.py"), str(tmp_path)], check=True, cwd=tmp_path,
                   capture_output=True)
    ort = get_backend("onnxruntime")
    for name in MODELS:
        committed = ort.load(CHAIN / "models" / f"{name}.onnx").run(chain_feeds[name])[0]
        rebuilt = ort.load(tmp_path / "models" / f"{name}.onnx").run(chain_feeds[name])[0]
        np.testing.assert_array_equal(rebuilt, committed)
    np.testing.assert_array_equal(np.load(tmp_path / "inputs" / "x.npy"), chain_feeds["encode"]["x"])
