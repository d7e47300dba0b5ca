"""``accuracy bisect --localize [--suggest-fp32]``: one command from the pipeline to the operator.

A three-model pipeline (``pre`` -> ``body`` -> ``post``) whose ``body`` is the fp16 hazard chain of
``tests/fixtures/onnx_graphs.py``: a ``ReduceSumSquare`` deep in it overflows fp16, the nodes after
it only inherit the error. Bisect must blame ``body``, localize must name the hazard node, and the
repair's keep-list must make the whole pipeline pass -- checked here by running it again, by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.backends import get_backend
from accuracy.backends.recorded.loader import record_call
from accuracy.cli import main
from accuracy.compare.criteria import Criteria, judge_outputs
from tests.fixtures.onnx_graphs import (
    CLEAN_SCALE,
    HAZARD_NODE,
    HAZARD_SCALE,
    INHERITORS,
    WIDTH,
    normalizer_chain,
    normalizer_feeds,
)

ENTRY = '''\
def run(models, inputs):
    h = models["pre"](x=inputs["x"])[0]
    h = models["body"](x=h)[0]
    return {"y": models["post"](x=h)[0]}
'''

SUITE = '''\
[pipeline]
entry = "pipeline.py:run"
[pipeline.models]
pre = "models/pre.onnx"
body = "models/body.onnx"
post = "models/post.onnx"
[pipeline.inputs]
x = "inputs/x.npy"
[reference]
backend = "onnxruntime"
[candidate]
backend = "onnxruntime-fp16"
[compare]
cosine_min = 0.999
'''

COSINE_MIN = 0.999


def _single(op: str, name: str, weight: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["out"], name=f"{name}_{op.lower()}")], name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, WIDTH])],
                              [numpy_helper.from_array(weight, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def build_pipeline(folder: Path, *, scale: float, suite_text: str = SUITE) -> Path:
    rng = np.random.default_rng(3)
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "inputs").mkdir(exist_ok=True)
    onnx.save(_single("Mul", "pre", np.array(1.0, np.float32)), str(folder / "models" / "pre.onnx"))
    onnx.save(normalizer_chain(scale=scale), str(folder / "models" / "body.onnx"))
    post = (rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)).astype(np.float32)
    onnx.save(_single("MatMul", "post", post), str(folder / "models" / "post.onnx"))
    np.save(folder / "inputs" / "x.npy", normalizer_feeds()["x"])
    (folder / "pipeline.py").write_text(ENTRY)
    (folder / "suite.toml").write_text(suite_text)
    return folder / "suite.toml"


@pytest.fixture(scope="module")
def hazard_pipeline(tmp_path_factory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("localize-hazard"), scale=HAZARD_SCALE)


def bisect_json(tmp_path: Path, suite: Path, *flags: str) -> tuple[int, dict]:
    out = tmp_path / "bisect.json"
    code = main(["bisect", str(suite), "--json", str(out), "--quiet", *flags])
    return code, json.loads(out.read_text())


def run_by_hand(folder: Path, keep_fp32: list[str] | None) -> bool:
    """The pipeline, assembled here from backends (not through bisect): reference fp32 against all
    models on the fp16 emulation, ``body`` keeping ``keep_fp32`` in fp32. Whether it passes."""
    models = {name: folder / "models" / f"{name}.onnx" for name in ("pre", "body", "post")}
    x = np.load(folder / "inputs" / "x.npy")

    def chain(sessions) -> dict[str, np.ndarray]:
        h = sessions["pre"].run({"x": x})[0]
        h = sessions["body"].run({"x": h})[0]
        return {"y": sessions["post"].run({"x": h})[0]}

    reference = chain({n: get_backend("onnxruntime").load(p) for n, p in models.items()})
    fp16 = {n: get_backend("onnxruntime-fp16", cache=False).load(p) for n, p in models.items()}
    if keep_fp32 is not None:
        fp16["body"] = get_backend("onnxruntime-fp16", keep_fp32=keep_fp32, cache=False).load(models["body"])
    return judge_outputs(reference, chain(fp16), criteria=Criteria(cosine_min=COSINE_MIN)).passed


def test_localize_names_the_culprit_and_its_hazard_node(hazard_pipeline, tmp_path):
    code, data = bisect_json(tmp_path, hazard_pipeline, "--localize")
    assert code == 1  # the all-candidate pipeline fails its check
    assert data["culprits"] == ["body"]
    found = data["models"]["body"]["localize"]
    assert found["first_divergent"]["node"] == HAZARD_NODE
    assert found["first_divergent"]["op_type"] == "ReduceSumSquare"
    assert found["introduced"] == [HAZARD_NODE] and found["stand_in"] is None
    status = {r["node"]: r["status"] for r in found["diverged"]}
    assert all(status[node] == "inherited" for node in INHERITORS)
    assert found["inputs"].startswith("recorded reference call 0")
    assert "localize" not in data["models"]["pre"] and "localize" not in data["models"]["post"]
    assert "repair" not in found and "repair" not in data
    whole = json.loads(Path(found["file"]).read_text())  # the whole localize JSON, next to --json
    assert Path(found["file"]).parent.parent == tmp_path / "bisect.localize"
    assert whole["first_divergent"]["node"] == HAZARD_NODE and len(whole["tensors"]) >= len(INHERITORS) + 4


def test_suggest_fp32_keep_list_makes_the_pipeline_pass(hazard_pipeline, tmp_path, capsys):
    report = tmp_path / "bisect.html"
    code, data = bisect_json(tmp_path, hazard_pipeline, "--suggest-fp32", "--report", str(report))
    assert code == 1  # a repair is a suggestion: the candidate as converted still fails
    repair = data["models"]["body"]["localize"]["repair"]
    keep = repair["keep_fp32"]
    assert repair["passed"] and repair["verified"]
    assert HAZARD_NODE in keep and len(keep) <= 2
    assert repair["pipeline"]["passed"] and "pipeline's [compare]" in repair["criterion"]
    assert data["repair"]["passed"] and data["repair"]["keep_fp32"] == {"body": keep}
    assert "OpName::" + HAZARD_NODE in repair["snippets"] and "enforce_fp32" in repair["snippets"]
    repaired = Path(repair["files"]["model"])
    onnx.checker.check_model(onnx.load(str(repaired)))
    assert json.loads(Path(repair["files"]["keep_fp32"]).read_text())["keep_fp32"] == keep
    # re-run by hand: fails as converted, passes with the keep-list
    assert not run_by_hand(hazard_pipeline.parent, None)
    assert run_by_hand(hazard_pipeline.parent, keep)
    printed = capsys.readouterr().out
    assert f"error enters at {HAZARD_NODE} (ReduceSumSquare)" in printed
    assert f"keep in fp32: {HAZARD_NODE}" in printed and str(repaired) in printed
    html = report.read_text()
    assert 'data-kind="localize"' in html and HAZARD_NODE in html


def test_clean_twin_has_no_localize_entries(tmp_path):
    suite = build_pipeline(tmp_path / "clean", scale=CLEAN_SCALE)
    code, data = bisect_json(tmp_path, suite, "--suggest-fp32")
    assert code == 0 and data["culprits"] == []
    assert not any("localize" in view for view in data["models"].values())
    assert "repair" not in data
    assert not (tmp_path / "bisect.localize").exists()


def test_bad_suite_is_exit_2(tmp_path, capsys):
    assert main(["bisect", str(tmp_path / "missing.toml"), "--localize", "--quiet"]) == 2
    assert "missing.toml" in capsys.readouterr().err


RECORDED = SUITE.replace('backend = "onnxruntime-fp16"\n', '''backend = "recorded"
match = "close"
[candidate.models]
body = "recorded/body"
''')


def _recorded_body(folder: Path, *, dump: bool, scale: float = HAZARD_SCALE, flip: bool = False) -> Path:
    """``body`` as a device would have dumped it: its fp16 outputs (negated with ``flip``: a device
    bug that is not fp16 rounding) and, with ``dump``, a tensor dump in which the hazard's sum of
    squares is inf (the tensors before it agree with fp32)."""
    suite = build_pipeline(folder, scale=scale, suite_text=RECORDED)
    x = np.load(folder / "inputs" / "x.npy")
    h_in = get_backend("onnxruntime").load(folder / "models" / "pre.onnx").run({"x": x})[0]
    out = get_backend("onnxruntime-fp16", cache=False).load(folder / "models" / "body.onnx").run({"x": h_in})[0]
    out = -out if flip else out
    call = record_call(folder / "recorded" / "body", 0, {"x": h_in}, {"y": out})
    if dump:
        model = onnx.load(str(folder / "models" / "body.onnx"))
        w1 = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w1"))
        h0 = h_in @ w1
        tensors = {"h0": h0, "h1": np.maximum(h0, 0), "h": np.maximum(h0, 0) * np.float32(HAZARD_SCALE),
                   "ss": np.full((1, 1), np.inf, np.float32), "n": np.full((1, 1), np.inf, np.float32),
                   "u": np.zeros_like(h0), "p": np.zeros_like(h0), "y": out}
        (call / "dump").mkdir()
        for name, value in tensors.items():
            np.save(call / "dump" / f"{name}.npy", value.astype(np.float32))
    return suite


def test_recorded_candidate_localizes_its_dump(tmp_path):
    code, data = bisect_json(tmp_path, _recorded_body(tmp_path / "p", dump=True), "--localize")
    assert code == 1 and data["culprits"] == ["body"]
    found = data["models"]["body"]["localize"]
    assert found["stand_in"] is None and found["candidate"].endswith("call_0000/dump")
    assert found["first_divergent"]["node"] == HAZARD_NODE
    assert "call_0000" in found["inputs"]


def test_recorded_candidate_without_dump_says_it_uses_a_stand_in(tmp_path):
    code, data = bisect_json(tmp_path, _recorded_body(tmp_path / "p", dump=False), "--suggest-fp32")
    assert code == 1 and data["culprits"] == ["body"]
    found = data["models"]["body"]["localize"]
    assert "'recorded'" in found["stand_in"] and "onnxruntime-fp16" in found["stand_in"]
    assert found["candidate"] == "onnxruntime-fp16"
    assert found["first_divergent"]["node"] == HAZARD_NODE
    repair = found["repair"]
    assert repair["passed"] and HAZARD_NODE in repair["keep_fp32"] and "stand-in" in repair["stand_in"]


def test_stand_in_that_cannot_reproduce_the_failure_says_so(tmp_path):
    suite = _recorded_body(tmp_path / "p", dump=False, scale=CLEAN_SCALE, flip=True)
    code, data = bisect_json(tmp_path, suite, "--suggest-fp32")
    assert code == 1 and data["culprits"] == ["body"]
    found = data["models"]["body"]["localize"]
    assert found["verdict"] == "pass" and found["first_divergent"] is None and found["stand_in"]
    assert not found["repair"]["passed"] and "not fp16 rounding" in found["repair"]["note"]
    assert not data["repair"]["passed"]


def test_unreadable_recorded_inputs_are_an_input_error_naming_the_file(tmp_path):
    from accuracy.bisect.localize import culprit_target
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec
    from accuracy.errors import InputError
    from accuracy.pipelines.recording import Recording
    from accuracy.pipelines.runner import PipelineRunner

    suite = _recorded_body(tmp_path / "p", dump=True)
    runner = PipelineRunner(load_pipeline_spec(load_suite(suite)))
    recording = Recording()
    runner.record(recording)
    broken = tmp_path / "p" / "recorded" / "body" / "call_0000" / "inputs" / "x.npy"
    broken.write_bytes(b"\x93NUMPY broken")
    with pytest.raises(InputError) as caught:
        culprit_target(runner, recording, "body")
    assert caught.value.path == str(broken)


def test_safe_name_is_shared_by_localize_folders_and_the_default_out_dir(tmp_path, monkeypatch):
    from argparse import Namespace

    from accuracy.bisect.localize import safe_name
    from accuracy.cli.bisect import _localize_out

    assert safe_name("unet/down 1") == "unet_down_1" and safe_name("") == "model"
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path))
    out = _localize_out(Namespace(localize_out=None, json_path=None, report=None), "my suite")
    assert out == tmp_path / "bisect" / "my_suite" / "localize"
    assert _localize_out(Namespace(localize_out=None, json_path=None, report=None), "").parent.name == "suite"
