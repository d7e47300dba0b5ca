"""The real MindSpore Lite (``mindspore-lite==2.0.0`` in its Python 3.7 venv): an ONNX model converted
by the real converter, run by the real runtime through the worker, compared with ONNX Runtime; a
worker killed under a live session, and a model the runtime cannot build, as clean verdicts; bisect
on the shipped suites. Skips with the reason where that interpreter is missing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from accuracy.backends import get_backend
from accuracy.cli import main
from accuracy.convert import convert_one
from accuracy.errors import BackendError, ConfigError
from tests.fixtures.mslite import embed_feeds, groupnorm_model

SUITES = Path(__file__).resolve().parents[1] / "suites"


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_converted_model_runs_in_the_real_runtime_and_matches_onnxruntime(mslite_python, embed_onnx, own_cache):
    result = convert_one("embed", embed_onnx, None, python=mslite_python)
    assert result.status == "converted" and result.mindir.suffix == ".mindir" and result.mindir.stat().st_size > 0
    assert str(own_cache) in str(result.mindir)
    reference = get_backend("onnxruntime").load(embed_onnx)
    session = get_backend("mindspore-lite", python=mslite_python, target="cpu").load(result.mindir, reference=reference)
    try:
        assert session.input_names == ["ids", "x"] and session.output_names == ["y"]
        assert session.model_dtypes[0] == np.int32  # the converter made int64 ids int32: feeds are cast
        ort_session = ort.InferenceSession(str(embed_onnx), providers=["CPUExecutionProvider"])
        for length in (5, 9):  # a dynamic dim: the runtime resizes per call
            feeds = embed_feeds(length)
            (got,) = session.run(feeds)
            (want,) = ort_session.run(None, feeds)
            assert got.shape == want.shape == (1, length, 4)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    finally:
        session.close()
    assert not session.worker.alive
    # the CPU context's precision mode reaches the runtime; x86 has no fp16 kernels, so the numbers hold
    fp16 = get_backend("mindspore-lite", python=mslite_python, precision_mode="preferred_fp16").load(result.mindir)
    try:
        feeds = embed_feeds(6)
        np.testing.assert_allclose(fp16.run(feeds)[0], ort_session.run(None, feeds)[0], rtol=1e-5, atol=1e-5)
    finally:
        fp16.close()
    with pytest.raises(ConfigError, match="cpu_precision_mode must be in .*preferred_fp16.*but got fp8"):
        get_backend("mindspore-lite", python=mslite_python, precision_mode="fp8").load(result.mindir)
    # the same content converts from the cache, without a worker
    again = convert_one("embed", embed_onnx, None, python=mslite_python)
    assert again.status == "cached" and again.mindir == result.mindir


def test_an_onnx_candidate_is_converted_on_the_fly(mslite_python, embed_onnx, own_cache):
    session = get_backend("mindspore-lite", python=mslite_python).load(embed_onnx)
    try:
        assert session.model_path.suffix == ".mindir" and str(own_cache) in str(session.model_path)
        (got,) = session.run(embed_feeds(4))
        assert got.shape == (1, 4, 4)
    finally:
        session.close()


def test_worker_killed_under_a_live_session_is_a_verdict(mslite_python, embed_onnx, own_cache):
    result = convert_one("embed", embed_onnx, None, python=mslite_python)
    session = get_backend("mindspore-lite", python=mslite_python).load(result.mindir)
    session.run(embed_feeds(3))
    os.kill(session.worker.process.pid, signal.SIGKILL)
    with pytest.raises(BackendError) as caught:
        session.run(embed_feeds(3))
    assert "candidate failed: mindspore-lite worker (embed.mindir) exited with SIGKILL during 'run'" in str(caught.value)
    assert str(result.mindir) in str(caught.value)


def test_a_model_the_runtime_cannot_build_names_the_library_error(mslite_python, tmp_path):
    broken = tmp_path / "broken.mindir"
    broken.write_bytes(b"\x00not a mindir at all" * 8)
    with pytest.raises(BackendError) as caught:
        get_backend("mindspore-lite", python=mslite_python).load(broken)
    message = str(caught.value)
    assert message.startswith(f"{broken}: candidate failed: mindspore_lite cannot build the model: build_from_file failed")
    assert "[ERROR]" in message  # the library's own lines, not only 'Common error code'


def test_the_shipped_chain_suite_gates_on_the_real_runtime(mslite_python, own_cache, tmp_path):
    out = tmp_path / "gate.json"
    assert main(["gate", str(SUITES / "mindspore-chain" / "mslite.toml"), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["verdict"] == "pass"
    assert len(list((own_cache / "mindir").glob("*/*.mindir"))) == 3  # encode, mid, decode converted


@pytest.mark.slow
def test_bisect_tiny_sd_on_mindspore_lite_reports_unet_by_name(mslite_python, tiny_sd, tmp_path):
    suite = tmp_path / "suite.toml"
    text = (SUITES / "tiny-sd-mslite" / "suite.toml").read_text()
    text = text.replace('builtin = "tiny-sd"', f'diffusers = "{tiny_sd}"')
    text = text.replace("../tiny-sd-img2img/inputs/photo.png", str(SUITES / "tiny-sd-img2img" / "inputs" / "photo.png"))
    suite.write_text(text)
    out = tmp_path / "bisect.json"
    assert main(["bisect", str(suite), "--json", str(out), "--quiet"]) == 1
    result = json.loads(out.read_text())
    assert result["verdict"] == "fail"
    assert "unet" in result["candidate_failed"] and "unet" in result["unchanged"]
    unet = result["models"]["unet"]
    assert unet["verdict"].startswith("candidate failed: mindspore_lite cannot build the model")
    assert "InferSubgraph index: 0 failed, ret: -500" in unet["verdict"]
    # the models that convert, build and run are bisected against the reference for real (the VAEs
    # thanks to the groupnorm-decomposed rewrite: as exported, their InstanceNorm fails at predict)
    assert result["candidate_failed"] == ["unet"]
    for model in ("text_encoder", "vae_encoder", "vae_decoder"):
        assert result["models"][model]["isolated"]["verdict"] == "pass"
        assert result["models"][model]["swap_in"]["verdict"] == "pass"
    assert any(note.startswith("unet: candidate failed") for note in result["notes"])


def test_groupnorm_rewrite_makes_the_runtime_take_diffusers_groupnorm(mslite_python, tmp_path, monkeypatch):
    """As exported, GroupNorm's 3-D InstanceNormalization fails in the Lite CPU kernel at predict; the
    rewrite (its formula in elementwise ops) runs and matches ONNX Runtime; both routes are named."""
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "groupnorm.onnx"
    onnx.save(groupnorm_model(), str(path))
    x = np.random.default_rng(3).standard_normal((1, 8, 4, 4)).astype(np.float32)
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})

    with pytest.raises(BackendError, match=r"candidate failed: .*Unsupported tensor shape: 3") as caught:
        as_is = get_backend("mindspore-lite", python=mslite_python, rewrites=False).load(path)  # static: fails here
        try:
            as_is.run({"x": x})  # dynamic shapes fail here instead
        finally:
            as_is.close()
    assert "gamma_tensor->ElementsNum() must be equal to channel" in str(caught.value)

    result = convert_one("groupnorm", path, None, python=mslite_python)
    assert result.rewrites == {"groupnorm-decomposed": 1} and "groupnorm-decomposed x1" in result.notes[-1]
    session = get_backend("mindspore-lite", python=mslite_python).load(result.mindir)
    try:
        (got,) = session.run({"x": x})
    finally:
        session.close()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bisect_goes_on_when_a_candidate_worker_dies_mid_run(mslite_python, own_cache, monkeypatch):
    """mid's worker is killed after its model was built: bisect records mid's verdict with the worker's
    stderr tail, keeps mid on the reference and bisects the other two on the real runtime."""
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec
    from accuracy.pipelines.runner import CANDIDATE, PipelineRunner

    monkeypatch.setenv("ACCURACY_MSLITE_PYTHON", mslite_python)
    spec = load_pipeline_spec(load_suite(SUITES / "mindspore-chain" / "mslite.toml"))
    runner = PipelineRunner(spec)
    try:
        mid = runner.session("mid", CANDIDATE)
        os.kill(mid.worker.process.pid, signal.SIGSEGV)
        result = bisect_pipeline(spec, runner=runner)
    finally:
        runner.close()
    assert result["verdict"] == "fail" and result["candidate_failed"] == ["mid"]
    verdict = result["models"]["mid"]["verdict"]
    assert verdict == "candidate failed: mindspore-lite worker (mid.mindir) exited with SIGSEGV during 'run'"
    assert isinstance(result["models"]["mid"]["stderr_tail"], list)
    for model in ("encode", "decode"):
        assert result["models"][model]["isolated"]["verdict"] == "pass"
    assert result["all_candidate"]["verdict"] == "pass"  # encode and decode on Lite, mid on the reference
