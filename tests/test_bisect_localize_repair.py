"""``bisect --localize/--suggest-fp32`` on pipelines real deployments have: a streaming model whose
late call overflows, and a two-model suite whose keep-list belongs to one model only. The repaired
model is loaded here by plain ONNX Runtime and must pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tomllib
from onnx import TensorProto, helper, numpy_helper

from accuracy.cli import main
from accuracy.compare.criteria import Criteria, judge_outputs
from tests.fixtures.fp16_graphs import RECURRENT_HAZARD, recurrent_cell
from tests.fixtures.onnx_graphs import (
    HAZARD_FIX,
    HAZARD_NODE,
    HAZARD_SCALE,
    WIDTH,
    normalizer_chain,
    normalizer_feeds,
)

STREAM_ENTRY = '''\
import numpy as np

def run(models, inputs):
    h = np.zeros_like(inputs["x"])
    for _ in range(4):
        h, y = models["cell"](x=inputs["x"], h=h)
    return {"y": y}
'''

STREAM_SUITE = '''\
[pipeline]
entry = "pipeline.py:run"
[pipeline.models]
cell = "cell.onnx"
[pipeline.inputs]
x = "x.npy"
[reference]
backend = "onnxruntime"
[candidate]
backend = "onnxruntime-fp16"
[compare]
cosine_min = 0.999
'''


def _bisect(tmp_path: Path, suite: Path, *flags: str) -> tuple[int, dict]:
    out = tmp_path / "bisect.json"
    code = main(["bisect", str(suite), "--json", str(out), "--quiet", *flags])
    return code, json.loads(out.read_text()) if out.exists() else {}


@pytest.fixture
def stream_suite(tmp_path) -> Path:
    onnx.save(recurrent_cell(), str(tmp_path / "cell.onnx"))
    np.save(tmp_path / "x.npy", np.full((1, 64), 0.5, np.float32))
    (tmp_path / "pipeline.py").write_text(STREAM_ENTRY)
    (tmp_path / "suite.toml").write_text(STREAM_SUITE)
    return tmp_path / "suite.toml"


def test_the_worst_recorded_call_is_localized_and_call_n_chooses(stream_suite, tmp_path):
    code, data = _bisect(tmp_path, stream_suite, "--localize")
    assert code == 1 and data["culprits"] == ["cell"]
    found = data["models"]["cell"]["localize"]
    assert found["inputs"].startswith("recorded reference call 2 of 4 (the worst of 4 in isolation")
    assert found["first_divergent"]["node"] == RECURRENT_HAZARD
    code, data = _bisect(tmp_path, stream_suite, "--localize", "--call", "0")
    found = data["models"]["cell"]["localize"]
    assert "chosen by --call" in found["inputs"] and found["inputs"].startswith("recorded reference call 0")
    assert found["verdict"] == "pass" and found["first_divergent"] is None  # the zero state shows nothing
    assert main(["bisect", str(stream_suite), "--quiet", "--localize", "--call", "9"]) == 2


def test_the_streaming_repair_is_judged_on_the_models_calls_and_confirmed(stream_suite, tmp_path):
    code, data = _bisect(tmp_path, stream_suite, "--suggest-fp32")
    assert code == 1  # a repair is a suggestion: the candidate as converted still fails
    repair = data["models"]["cell"]["localize"]["repair"]
    assert repair["passed"] and repair["keep_fp32"] == [RECURRENT_HAZARD, "norm"] and repair["verified"]
    assert repair["searched_by"].startswith("trials judged on the model's recorded calls")
    assert repair["pipeline_runs"] <= 2 and repair["model_runs"] >= 4  # confirm (+ the deployed model)
    assert repair["repaired_model"]["passed"] and "node_block_list" in repair["repaired_model"]["converter"]
    _assert_repaired_model_passes(Path(repair["files"]["model"]), stream_suite.parent)


def _assert_repaired_model_passes(path: Path, folder: Path) -> None:
    """The repaired file in plain ONNX Runtime, in the pipeline by hand, against the fp32 reference."""
    repaired = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert any(t.data_type == TensorProto.FLOAT16 for t in onnx.load(str(path)).graph.initializer)  # really fp16
    reference = ort.InferenceSession(str(folder / "cell.onnx"), providers=["CPUExecutionProvider"])
    x = np.load(folder / "x.npy")

    def stream(session):
        h = np.zeros_like(x)
        for _ in range(4):
            h, y = session.run(None, {"x": x, "h": h})
        return {"y": y}

    assert judge_outputs(stream(reference), stream(repaired), criteria=Criteria(cosine_min=0.999)).passed


TWO_ENTRY = '''\
def run(models, inputs):
    h = models["a"](x=inputs["x"])[0]
    return {"y": models["b"](x=h)[0]}
'''

TWO_SUITE = '''\
[pipeline]
entry = "pipeline.py:run"
[pipeline.models]
a = "a.onnx"
b = "b.onnx"
[pipeline.inputs]
x = "x.npy"
[reference]
backend = "onnxruntime"
[candidate]
backend = "onnxruntime-fp16"
{keep}
[compare]
cosine_min = 0.999
'''


@pytest.fixture
def two_models(tmp_path) -> Path:
    onnx.save(normalizer_chain(scale=HAZARD_SCALE), str(tmp_path / "a.onnx"))
    weight = (np.random.default_rng(5).standard_normal((WIDTH, WIDTH)) / 8).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="project")], "b",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
                              [numpy_helper.from_array(weight, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "b.onnx"))
    np.save(tmp_path / "x.npy", normalizer_feeds()["x"])
    (tmp_path / "pipeline.py").write_text(TWO_ENTRY)
    return tmp_path


def _suite(folder: Path, keep: str) -> Path:
    path = folder / "suite.toml"
    path.write_text(TWO_SUITE.format(keep=keep))
    return path


def test_a_two_model_suite_takes_a_per_model_keep_list_table(two_models, tmp_path, capsys):
    code, data = _bisect(tmp_path, _suite(two_models, f'[candidate.keep_fp32]\na = {json.dumps(HAZARD_FIX)}'))
    assert code == 0 and data["verdict"] == "pass"
    code, _ = _bisect(tmp_path, _suite(two_models, f'keep_fp32 = ["{HAZARD_NODE}"]'))  # b lacks the node
    assert code == 2 and "[candidate.keep_fp32] model = " in capsys.readouterr().err
    code, _ = _bisect(tmp_path, _suite(two_models, '[candidate.keep_fp32]\nc = ["x"]'))
    assert code == 2 and "candidate.keep_fp32.c" in capsys.readouterr().err


def test_suggest_fp32_writes_the_table_that_makes_the_suite_pass(two_models, tmp_path):
    code, data = _bisect(tmp_path, _suite(two_models, ""), "--suggest-fp32")
    assert code == 1 and data["culprits"] == ["a"]
    table = data["repair"]["suite_table"]
    assert tomllib.loads(table) == {"candidate": {"keep_fp32": {"a": HAZARD_FIX}}}
    files = data["models"]["a"]["localize"]["repair"]["files"]
    assert tomllib.loads(Path(files["suite_table"]).read_text())["candidate"]["keep_fp32"] == {"a": HAZARD_FIX}
    code, data = _bisect(tmp_path, _suite(two_models, table.replace("[candidate.keep_fp32]", "[candidate.keep_fp32]")))
    assert code == 0 and data["verdict"] == "pass"
