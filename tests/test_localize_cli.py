"""``accuracy localize`` as a user runs it: a real subprocess, exit codes, the JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.fixtures.onnx_graphs import HAZARD_NODE


def _localize(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "accuracy", "localize", *map(str, args)],
                          check=False, capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def feeds_npz(tmp_path, normalizer_inputs):
    path = tmp_path / "feeds.npz"
    np.savez(path, **normalizer_inputs)
    return path


def test_divergence_exits_1_with_the_design_json(tmp_path, hazard_onnx, feeds_npz):
    out = tmp_path / "result.json"
    proc = _localize(hazard_onnx, "--candidate", "onnxruntime-fp16", "--inputs", feeds_npz, "--json", out,
                     "--suggest-fp32", "--out", tmp_path / "repair")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(out.read_text())
    assert result["verdict"] == "fail"
    assert set(result["first_divergent"]) >= {"node", "op_type", "tensor", "metrics"}
    assert result["first_divergent"]["node"] == HAZARD_NODE
    assert [t["index"] for t in result["tensors"]] == sorted(t["index"] for t in result["tensors"])
    hazard = next(t for t in result["tensors"] if t["node"] == HAZARD_NODE)
    assert hazard["metrics"]["nonfinite_obtained"] == 1 and hazard["passed"] is False  # inf on one side only fails
    assert f"error enters at {HAZARD_NODE}" in proc.stdout and "keep in fp32: sum_sq" in proc.stdout
    assert (tmp_path / "repair" / "model_fp16_repaired.onnx").exists()
    assert json.loads((tmp_path / "repair" / "localize.json").read_text())["verdict"] == "fail"


def test_clean_model_exits_0(clean_onnx, feeds_npz, tmp_path):
    proc = _localize(clean_onnx, "--inputs", feeds_npz, "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["first_divergent"] is None


BAD_INPUT = ["missing_model", "bad_npz", "wrong_input", "wrong_shape", "unknown_keep", "small_segment",
             "map_with_backend", "empty_dump"]


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, hazard_onnx, feeds_npz, normalizer_inputs):
    args = {
        "missing_model": [tmp_path / "nope.onnx", "--inputs", feeds_npz],
        "bad_npz": [hazard_onnx, "--inputs", tmp_path / "bad.npz"],
        "wrong_input": [hazard_onnx, "--inputs", tmp_path / "wrong.npz"],
        "wrong_shape": [hazard_onnx, "--inputs", tmp_path / "short.npz"],
        "unknown_keep": [hazard_onnx, "--inputs", feeds_npz, "--keep-fp32", f"{HAZARD_NODE},nosuch"],
        "small_segment": [hazard_onnx, "--inputs", feeds_npz, "--segment-mb", "0"],
        "map_with_backend": [hazard_onnx, "--inputs", feeds_npz, "--map", tmp_path / "m.json"],
        "empty_dump": [hazard_onnx, "--inputs", feeds_npz, "--candidate", tmp_path / "dump"],
    }[case]
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    np.savez(tmp_path / "wrong.npz", z=normalizer_inputs["x"])
    np.savez(tmp_path / "short.npz", x=normalizer_inputs["x"][:, :32])  # the model declares x as [1, 64]
    (tmp_path / "dump").mkdir()
    proc = _localize(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    expected = {"missing_model": ["nope.onnx"], "bad_npz": ["bad.npz"], "wrong_input": ["wrong.npz", "['x']"],
                "wrong_shape": ["short.npz", "[x]", "(1, 32)", "(1, 64)"], "unknown_keep": ["['nosuch']"],
                "small_segment": ["--segment-mb"], "map_with_backend": ["--map"],
                "empty_dump": ["no tensor could be compared"]}[case]
    assert all(words in lines[0] for words in expected), lines[0]
