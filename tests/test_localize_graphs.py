"""``localize`` on the graphs real models bring: -inf masks, If branches, dynamic dims, other dtypes,
sequence intermediates, scale errors (graphs in tests/fixtures/fp16_graphs.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from accuracy.compare.tensors import TensorThresholds
from accuracy.errors import InputError
from accuracy.localize import localize_model
from tests.fixtures.fp16_graphs import (
    BN_NODE,
    attention_mask_model,
    batchnorm_scale_model,
    dynamic_batch_model,
    if_branch_model,
    save,
    sequence_model,
)


def _by_node(result):
    return {r["node"]: r for r in result["tensors"]}


def test_a_mask_made_with_minus_inf_is_not_blamed(tmp_path):
    path = save(attention_mask_model(), tmp_path / "mask.onnx")
    scores = {"scores": np.linspace(-2, 2, 16, dtype=np.float32).reshape(4, 4)}
    result = localize_model(path, scores)
    assert result["verdict"] == "pass" and result["first_divergent"] is None
    nodes = _by_node(result)
    assert nodes["causal_mask"]["passed"] is True and nodes["causal_mask"]["metrics"]["nonfinite_obtained"] == 6
    assert nodes["apply_mask"]["passed"] is True


def test_layers_inside_an_if_branch_are_emulated_and_compared(tmp_path):
    path = save(if_branch_model(), tmp_path / "if.onnx")
    feeds = {"x": np.full((1, 64), 1.0, np.float32), "use_norm": np.array(True)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "fail"
    first = result["first_divergent"]
    assert (first["node"], first["op_type"], first["tensor"]) == ("sum_sq", "ReduceSumSquare", "ss")
    nodes = _by_node(result)
    assert nodes["sum_sq"]["scope"] == "branch" and nodes["amplify"]["status"] == "ok"
    assert nodes["unit"]["status"] == "inherited" and nodes["branch"]["status"] == "inherited"
    assert result["control_flow"]["expanded"] == [{"node": "branch", "branch": "then_branch", "nodes": 4}]
    assert result["control_flow"]["compared_inside"] == 4 and result["control_flow"]["not_compared_inside"] == {}
    emulation = result["emulation"]
    assert emulation["in_subgraphs"] == 5 and emulation["not_emulated"] == 0
    assert emulation["by_op_type"]["emulated"]["ReduceSumSquare"] == 1
    # a keep-list naming the branch node repairs it, verified on the model's outputs
    repaired = localize_model(path, feeds, suggest_fp32=True)["repair"]
    assert repaired["passed"] and repaired["keep_fp32"] == ["sum_sq"]
    other = localize_model(path, {**feeds, "use_norm": np.array(False)})
    assert other["verdict"] == "pass" and other["control_flow"]["expanded"][0]["branch"] == "else_branch"


@pytest.mark.parametrize("batch", [1, 5])
def test_negative_symbolic_and_missing_dims_are_free(tmp_path, batch):
    path = save(dynamic_batch_model(), tmp_path / "dyn.onnx")
    feeds = {"x": np.random.default_rng(0).standard_normal((batch, 3, 48, 8)).astype(np.float32)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "pass" and result["tensors"][-1]["shape"] == [batch, 3, 48, 8]
    with pytest.raises(InputError, match=r"declares \(\?, 3, \?, 8\)"):
        localize_model(path, {"x": feeds["x"][:, :2]})  # the fixed dimension still is


def test_a_sequence_intermediate_is_skipped_with_a_note(tmp_path):
    path = save(sequence_model(), tmp_path / "seq.onnx")
    feeds = {"x": np.arange(8, dtype=np.float32).reshape(2, 4), "x0": np.ones(4, np.float32)}
    result = localize_model(path, feeds, segment_bytes=1)  # a cut after every node, but never across 'parts'
    assert result["verdict"] == "pass"
    assert result["skipped"] == [{"tensor": "parts", "node": "split", "kind": "sequence"}]
    assert any("sequence" in w and "parts" in w for w in result["warnings"])
    assert [r["tensor"] for r in result["tensors"] if r["index"] >= 0] == ["first", "y"]


def test_a_scale_error_cosine_cannot_see_is_caught_by_default(tmp_path):
    path = save(batchnorm_scale_model(), tmp_path / "bn.onnx")
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    result = localize_model(path, feeds)
    assert result["verdict"] == "fail" and result["first_divergent"]["node"] == BN_NODE
    metrics = result["first_divergent"]["metrics"]
    assert metrics["cosine"] > 0.999 and metrics["rel_l2"] > 5  # direction kept, magnitude not
    assert result["thresholds"]["rel_l2_max"] == 0.15
    cosine_only = localize_model(path, feeds, thresholds=TensorThresholds(cosine_min=0.99))
    assert cosine_only["verdict"] == "pass"  # the old default saw nothing


def _localize_cli(*args):
    return subprocess.run([sys.executable, "-m", "accuracy", "localize", *map(str, args)],
                          check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("dtype, said", [("V2", "raw 2-byte values"), ("float64", "is float64 but the model declares float")])
def test_feeds_of_another_dtype_are_one_line_exit_2(tmp_path, dtype, said):
    path = save(dynamic_batch_model(), tmp_path / "dyn.onnx")
    feeds = tmp_path / "feeds.npz"
    if dtype == "V2":  # how numpy stores bfloat16 data (e.g. ml_dtypes.bfloat16 saved with np.savez)
        data = np.zeros((1, 3, 4, 8), np.uint16).view("V2")
    else:
        data = np.zeros((1, 3, 4, 8), np.float64)
    np.savez(feeds, x=data)
    proc = _localize_cli(path, "--inputs", feeds)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert str(feeds) in lines[0] and "'x'" in lines[0] and said in lines[0]
