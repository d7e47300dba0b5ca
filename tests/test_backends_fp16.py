"""``onnxruntime-fp16``: device fp16 numerics emulated on the CPU, proven on graphs that overflow fp16."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from accuracy.backends import get_backend
from accuracy.backends.onnxrt_fp16 import loader
from accuracy.backends.onnxrt_fp16.emulate import emulate_fp16, node_names
from accuracy.errors import BackendError, ConfigError
from tests.fixtures.fp16_graphs import CAUSAL_INF, attention_mask_model, if_branch_model
from tests.fixtures.onnx_graphs import HAZARD_SCALE, normalizer_chain


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCURACY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _save(model, path):
    onnx.save(model, str(path))
    return path


def _plain_fp16_on_cpu(model: onnx.ModelProto, feeds):
    """What a plain conversion gives on ORT's CPU provider (the behaviour the backend must not copy)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(model, keep_io_types=True)
    session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _sum_of_squares_model():
    return _model(
        [helper.make_node("ReduceSumSquare", ["x"], ["y"], axes=[-1], keepdims=1)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )


def test_overflowing_reduction_is_inf_only_under_emulation(tmp_path):
    feeds = {"x": np.full((1, 64), 100.0, np.float32)}  # sum of squares 640000 > 65504
    (plain,) = _plain_fp16_on_cpu(_sum_of_squares_model(), feeds)
    assert np.isfinite(plain).all() and plain[0, 0] == pytest.approx(640000.0)  # ORT hides the overflow
    path = _save(_sum_of_squares_model(), tmp_path / "ss.onnx")
    (emulated,) = get_backend("onnxruntime-fp16").load(path).run(feeds)
    assert np.isposinf(emulated).all()
    (reference,) = get_backend("onnxruntime").load(path).run(feeds)
    assert reference[0, 0] == pytest.approx(640000.0)


def test_hazard_deep_in_a_chain_reaches_the_output(hazard_onnx, normalizer_inputs):
    reference = get_backend("onnxruntime").load(hazard_onnx).run(normalizer_inputs)[0]
    plain = _plain_fp16_on_cpu(normalizer_chain(scale=HAZARD_SCALE), normalizer_inputs)[0]
    np.testing.assert_allclose(plain, reference, atol=2e-3)  # plain conversion: looks fine
    emulated = get_backend("onnxruntime-fp16").load(hazard_onnx).run(normalizer_inputs)[0]
    assert np.all(emulated == 0.0)  # x / inf -> 0 all the way down
    # the reduction's own tensor is inf in the emulated graph, under every allowed optimisation level
    model = emulate_fp16(normalizer_chain(scale=HAZARD_SCALE))
    model.graph.output.append(helper.make_tensor_value_info("ss", TensorProto.FLOAT, None))
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        assert np.isposinf(session.run(["ss"], normalizer_inputs)[0]).all()


def test_clean_twin_is_close_but_really_rounded(clean_onnx, normalizer_inputs):
    reference = get_backend("onnxruntime").load(clean_onnx).run(normalizer_inputs)[0]
    emulated = get_backend("onnxruntime-fp16").load(clean_onnx).run(normalizer_inputs)[0]
    assert np.isfinite(emulated).all()
    np.testing.assert_allclose(emulated, reference, atol=5e-3)
    assert np.abs(emulated - reference).max() > 0  # the rounding is really there


def test_rounding_at_boundaries_and_fp32_accumulation_inside_ops(tmp_path):
    n = 4096
    model = _model(
        [
            helper.make_node("Add", ["x", "zero"], ["r"], name="round_me"),
            helper.make_node("MatMul", ["ones_row", "ones_col"], ["s"], name="accumulate"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("ones_row", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1])],
        [numpy_helper.from_array(np.zeros(4, np.float32), "zero"),
         numpy_helper.from_array(np.ones((n, 1), np.float32), "ones_col")],
    )
    path = _save(model, tmp_path / "round.onnx")
    x = np.array([1 + 2**-12, 1e-8, 70000.0, 0.1], np.float32)
    r, s = get_backend("onnxruntime-fp16").load(path).run({"x": x, "ones_row": np.ones((1, n), np.float32)})
    assert r[0] == 1.0 and r[1] == 0.0 and np.isposinf(r[2])  # lost low bits, flushed, overflowed
    assert r[3] == np.float32(np.float16(0.1))
    # fp16 accumulation would stall at 2048 (spacing 2 there); fp32 accumulation reaches 4096 exactly
    assert s[0, 0] == n


def test_keep_fp32_repairs_the_hazard_and_unknown_nodes_are_named(hazard_onnx, normalizer_inputs):
    reference = get_backend("onnxruntime").load(hazard_onnx).run(normalizer_inputs)[0]
    repaired = get_backend("onnxruntime-fp16", keep_fp32=["sum_sq", "norm"]).load(hazard_onnx).run(normalizer_inputs)[0]
    np.testing.assert_allclose(repaired, reference, atol=5e-3)
    with pytest.raises(ConfigError, match="no_such_node"):
        get_backend("onnxruntime-fp16", keep_fp32=["no_such_node"]).load(hazard_onnx)
    with pytest.raises(ConfigError, match="graph_optimization_level"):
        get_backend("onnxruntime-fp16", graph_optimization_level="all").load(hazard_onnx)


def test_converted_model_is_cached_valid_and_keeps_names(hazard_onnx, normalizer_inputs, private_cache, monkeypatch):
    get_backend("onnxruntime-fp16").load(hazard_onnx)
    (cached,) = list((private_cache / "fp16").glob("*/model.onnx"))
    onnx.checker.check_model(str(cached))
    converted = onnx.load(str(cached))
    original = onnx.load(str(hazard_onnx))
    produced = {t for node in converted.graph.node for t in node.output}
    assert {t for node in original.graph.node for t in node.output} <= produced
    assert [i.name for i in converted.graph.input] == ["x"] and [o.name for o in converted.graph.output] == ["y"]
    # the cached file runs on the plain backend too
    assert np.all(get_backend("onnxruntime").load(cached).run(normalizer_inputs)[0] == 0.0)

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(loader, "emulate_fp16", must_not_convert)
    get_backend("onnxruntime-fp16").load(hazard_onnx)  # cache hit
    with pytest.raises(AssertionError, match="converted again"):
        get_backend("onnxruntime-fp16", keep_fp32=["norm"]).load(hazard_onnx)  # a different key



def test_optimised_copy_is_saved_once_gives_the_same_numbers_and_a_damaged_one_is_remade(
        hazard_onnx, normalizer_inputs, private_cache, monkeypatch):
    expected = get_backend("onnxruntime-fp16", cache=False).load(hazard_onnx).run(normalizer_inputs)  # ORT's basic pass
    get_backend("onnxruntime-fp16").load(hazard_onnx)
    (optimised,) = list((private_cache / "fp16").glob("*/model.ort-basic-*.onnx"))
    opened = []
    real_open = loader.open_session
    monkeypatch.setattr(loader, "open_session", lambda model, **kw: opened.append((model, kw)) or real_open(model, **kw))
    got = get_backend("onnxruntime-fp16").load(hazard_onnx).run(normalizer_inputs)
    assert [(model, kw["graph_optimization_level"]) for model, kw in opened] == [(optimised, "disable")]
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(expected, got))
    optimised.write_bytes(b"damaged")
    got = get_backend("onnxruntime-fp16").load(hazard_onnx).run(normalizer_inputs)
    assert [model.name for model, _ in opened[1:]] == [optimised.name, "model.onnx"]  # damaged: opened as before
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(expected, got))
    assert onnx.load(str(optimised)).graph.node  # and saved again

def test_the_optimised_copy_keeps_its_weights_in_a_data_file_and_one_lost_is_remade(tmp_path, private_cache):
    """Weights apart (ORT maps them on the next load): one data file beside the copy, a unique name per
    writer; with it gone the copy cannot load, and is made again, the same numbers either way."""
    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.standard_normal((128, 128)).astype(np.float32), "w")
    path = _save(_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128])], [weight]),
                 tmp_path / "m.onnx")
    feeds = {"x": rng.standard_normal((1, 128)).astype(np.float32)}
    expected = get_backend("onnxruntime-fp16").load(path).run(feeds)[0]
    (optimised,) = list((private_cache / "fp16").glob("*/model.ort-basic-*.onnx"))
    (data,) = list(optimised.parent.glob(f"{optimised.name}.*.data"))
    assert data.stat().st_size >= 128 * 128 * 4 and optimised.stat().st_size < 16 * 1024
    assert np.array_equal(get_backend("onnxruntime-fp16").load(path).run(feeds)[0], expected)
    data.unlink()
    assert np.array_equal(get_backend("onnxruntime-fp16").load(path).run(feeds)[0], expected)
    assert len(list(optimised.parent.glob(f"{optimised.name}.*.data"))) == 1  # saved again, with its data


def test_unnamed_nodes_are_named_by_their_output_tensor():
    names = node_names(normalizer_chain(scale=1.0).graph)
    assert names == ["embed", "h1", "amplify", "sum_sq", "norm", "unit", "proj", "y"]


def test_weights_and_constants_saturate_but_computed_tensors_overflow(tmp_path):
    """Converters clip weights/constants to fp16's range offline (an attention mask's float32 minimum
    stays a large finite negative); a value computed at run time past 65504 is inf."""
    lowest = np.finfo(np.float32).min
    model = _model(
        [helper.make_node("Constant", [], ["mask"], name="mask",
                          value=numpy_helper.from_array(np.array([0.0, lowest], np.float32))),
         helper.make_node("Add", ["x", "mask"], ["masked"], name="apply_mask"),
         helper.make_node("Softmax", ["masked"], ["p"], name="softmax", axis=-1),
         helper.make_node("Mul", ["x", "big"], ["y"], name="grow")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array([1e6, 1.0], np.float32), "big")],
    )
    path = _save(model, tmp_path / "mask.onnx")
    p, y = get_backend("onnxruntime-fp16").load(path).run({"x": np.array([1.0, 2.0], np.float32)})
    np.testing.assert_allclose(p, [1.0, 0.0])  # finite mask: softmax works as in fp32
    assert y[0] == 65504.0 and y[1] == 2.0  # the weight 1e6 saturated to 65504, times 1 ...
    grown = get_backend("onnxruntime-fp16").load(path).run({"x": np.array([2.0, 2.0], np.float32)})[1]
    assert np.isposinf(grown[0])  # ... but 2 * 65504, computed, overflows


def test_corrupt_model_is_a_backend_error_naming_the_file(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x0a\xff\xff not a protobuf")
    with pytest.raises(BackendError, match="onnx cannot read the model") as caught:
        get_backend("onnxruntime-fp16").load(junk)
    assert caught.value.path == str(junk)
    with pytest.raises(ConfigError, match="cache must be true or false"):
        get_backend("onnxruntime-fp16", cache="no").load(tmp_path / "junk.onnx")


def test_large_model_entry_is_placed_whole_and_a_lost_race_keeps_the_winner(hazard_onnx, normalizer_inputs,
                                                                             private_cache, monkeypatch):
    """Over 2 GB (lowered here) the model and its .data file go into the cache as one folder. A process
    that finishes second discards its copy: the winner's files, maybe open in another process, stay."""
    monkeypatch.setattr(loader, "_TWO_GB", 0)
    get_backend("onnxruntime-fp16").load(hazard_onnx)
    (entry,) = (private_cache / "fp16").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["model.onnx", "model.onnx.data"]

    real_emulate = loader.emulate_fp16
    winner = private_cache / "fp16" / loader.content_hash(hazard_onnx, keep_fp32=["norm"])

    def another_process_wins(model, **kwargs):
        emulated = real_emulate(model, **kwargs)
        copy = onnx.ModelProto()
        copy.CopyFrom(emulated)  # onnx.save moves a model's weights out: save a copy
        winner.mkdir(parents=True)
        onnx.save(copy, str(winner / "model.onnx"), save_as_external_data=True, location="model.onnx.data")
        return emulated

    monkeypatch.setattr(loader, "emulate_fp16", another_process_wins)
    data = winner / "model.onnx.data"
    session = get_backend("onnxruntime-fp16", keep_fp32=["norm"]).load(hazard_onnx)
    assert data.stat().st_size == sum(
        onnx.numpy_helper.to_array(t).nbytes for t in onnx.load(str(hazard_onnx)).graph.initializer
        if t.name in {"w1", "w2"})  # the winner's data, not ours appended to it
    assert sorted(p.name for p in (private_cache / "fp16").iterdir()) == sorted([entry.name, winner.name])
    assert np.isfinite(session.run(normalizer_inputs)[0]).all()


@pytest.mark.parametrize("round_initializers", [True, False])
def test_inf_and_nan_constants_are_kept_only_finite_values_saturate(round_initializers):
    """A mask built from -inf stays -inf (as onnxruntime.transformers.float16 keeps it); finite values
    past fp16's range saturate, in memory and in the graph (the path for external-data weights)."""
    weights = np.array([np.inf, -np.inf, np.nan, 1e6, -1e6, 1.0], np.float32)
    model = _model([helper.make_node("Identity", ["w"], ["y"], name="read")], [],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])],
                   [numpy_helper.from_array(weights, "w")])
    emulated = emulate_fp16(model, round_initializers=round_initializers)
    (y,) = ort.InferenceSession(emulated.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
    np.testing.assert_array_equal(y[:2], [np.inf, -np.inf])
    assert np.isnan(y[2]) and list(y[3:]) == [65504.0, -65504.0, 1.0]
    masked = emulate_fp16(attention_mask_model(CAUSAL_INF))
    (constant,) = [n for n in masked.graph.node if n.op_type == "Constant"]
    np.testing.assert_array_equal(numpy_helper.to_array(constant.attribute[0].t), CAUSAL_INF)


def test_attention_mask_made_with_minus_inf_runs_as_in_fp32(tmp_path):
    path = _save(attention_mask_model(CAUSAL_INF), tmp_path / "mask_inf.onnx")
    scores = {"scores": np.linspace(-2, 2, 16, dtype=np.float32).reshape(4, 4)}
    (reference,) = get_backend("onnxruntime").load(path).run(scores)
    (emulated,) = get_backend("onnxruntime-fp16").load(path).run(scores)
    np.testing.assert_allclose(emulated, reference, atol=2e-3)
    assert np.all(emulated[np.triu_indices(4, k=1)] == 0.0)


def test_if_branches_are_emulated_and_counted(tmp_path):
    from accuracy.backends.onnxrt_fp16.emulate import emulation_coverage

    path = _save(if_branch_model(), tmp_path / "if.onnx")
    feeds = {"x": np.full((1, 64), 1.0, np.float32), "use_norm": np.array(True)}
    (reference,) = get_backend("onnxruntime").load(path).run(feeds)
    assert np.isfinite(reference).all()
    (emulated,) = get_backend("onnxruntime-fp16").load(path).run(feeds)
    assert np.all(emulated == 0.0)  # 100**2 * 64 overflows inside the branch: h / inf
    (kept,) = get_backend("onnxruntime-fp16", keep_fp32=["sum_sq", "norm"]).load(path).run(feeds)
    np.testing.assert_allclose(kept, reference, rtol=2e-3)  # a branch node named in keep_fp32
    coverage = emulation_coverage(onnx.load(str(path))).to_dict()
    assert coverage["in_subgraphs"] == 5 and coverage["not_emulated"] == 0
    assert coverage["by_op_type"]["emulated"] == {"Div": 1, "Identity": 1, "If": 1, "Mul": 1,
                                                  "ReduceSumSquare": 1, "Sqrt": 1}


def test_loop_and_scan_bodies_are_emulated():
    body = helper.make_graph(
        [helper.make_node("Mul", ["acc_in", "gain"], ["acc_out"], name="grow"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([1.0 + 2**-12], np.float32), "gain")])
    model = _model(
        [helper.make_node("Loop", ["trips", "", "start"], ["y"], name="loop", body=body)],
        [helper.make_tensor_value_info("trips", TensorProto.INT64, []),
         helper.make_tensor_value_info("start", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    feeds = {"trips": np.array(8, np.int64), "start": np.array([1.0], np.float32)}
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    emulated = ort.InferenceSession(emulate_fp16(model).SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert plain[0] > 1.0 and emulated[0] == 1.0  # the gain rounds to 1 in fp16 inside the body


def test_content_hash_reads_external_data_files_and_skips_the_parse_without_them(tmp_path, monkeypatch):
    """The cache key covers the weights wherever they are: an edit of an external-data file changes it; a
    model without external data is hashed without parsing the model for locations."""
    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    inline = _save(model, tmp_path / "inline.onnx")
    external = tmp_path / "external.onnx"
    onnx.save(model, str(external), save_as_external_data=True, location="w.bin", size_threshold=0)
    before = loader.content_hash(external)
    data = bytearray((tmp_path / "w.bin").read_bytes())
    data[100] ^= 1
    (tmp_path / "w.bin").write_bytes(bytes(data))
    assert loader.content_hash(external) != before
    parsed = []
    monkeypatch.setattr(loader, "_external_files", lambda path: parsed.append(path) or [])
    loader.content_hash(inline)
    assert parsed == []
    loader.content_hash(external)
    assert parsed == [external]


@pytest.mark.parametrize("saturate", [False, True])
def test_large_arrays_round_through_onnxruntime_to_the_same_bits_as_numpy(saturate, monkeypatch):
    """Past ``_ORT_CAST_MIN`` elements the rounding runs as ORT's Cast pair: bit for bit numpy's float16
    round trip (subnormals, ties, 65504..65520, overflow, inf, NaN, -0), saturation applied alike."""
    from accuracy.backends.onnxrt_fp16 import emulate

    rng = np.random.default_rng(3)
    edges = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-9, 2.98e-8, 3e-8, 5.96e-8, 6.1e-5, 6.2e-5, 1.0,
                      1.00048828125, 65504.0, 65519.0, 65520.0, 7e4, -7e4, 3e38], np.float32)
    data = np.concatenate([np.tile(edges, 5000), (rng.standard_normal(100_000)
                                                  * 10.0 ** rng.uniform(-10, 6, 100_000)).astype(np.float32)])
    data = data.reshape(-1, 5)
    through_ort = emulate.round_to_fp16(data, saturate=saturate)
    monkeypatch.setattr(emulate, "_ORT_CAST_MIN", 1 << 62)
    through_numpy = emulate.round_to_fp16(data, saturate=saturate)
    assert through_ort.shape == data.shape and through_ort.dtype == np.float32
    assert np.array_equal(through_ort.view(np.uint32), through_numpy.view(np.uint32))
    overflowed = np.isinf(through_ort) & np.isfinite(data)  # finite past 65520: inf, or 65504 saturated
    assert overflowed.any() != saturate


@pytest.mark.parametrize("in_place", [True, False])
def test_uncached_session_reads_its_weights_in_place_or_in_memory_and_gives_the_cached_numbers(
        tmp_path, monkeypatch, in_place):
    """``cache = false`` (the repair's trials): a light graph whose large weights ORT reads in place from
    the model file (rounded by Casts in the graph), or -- for a file the scan declines -- takes as arrays.
    The same outputs as the cached file, a kept node's weight (past fp16's range) included."""
    from accuracy.backends.onnxrt_fp16 import inmemory

    if not in_place:
        monkeypatch.setattr(inmemory, "read_in_place", lambda *_: None)
    rng = np.random.default_rng(5)
    weights = [numpy_helper.from_array((rng.standard_normal((256, 256)) * 30).astype(np.float32), f"w{i}")
               for i in range(2)]
    weights[1].CopyFrom(numpy_helper.from_array(np.where(np.arange(256 * 256).reshape(256, 256) % 7 == 0, 7e4,
                                                         numpy_helper.to_array(weights[1])).astype(np.float32), "w1"))
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["a"], name="first"),
             helper.make_node("MatMul", ["a", "w1"], ["y"], name="kept")]
    path = _save(_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 256])], weights),
                 tmp_path / f"m{in_place}.onnx")
    converted = loader.convert(path, keep_fp32=["kept"], use_cache=False)
    assert len(converted.serialized) < 4096
    assert (converted.folder, sorted(converted.arrays)) == ((tmp_path, []) if in_place else (None, ["w0", "w1"]))
    feeds = {"x": rng.standard_normal((4, 256)).astype(np.float32)}
    uncached = get_backend("onnxruntime-fp16", keep_fp32=["kept"], cache=False).load(path).run(feeds)
    cached = get_backend("onnxruntime-fp16", keep_fp32=["kept"]).load(path).run(feeds)
    # in place the rounded weights are computed in the graph, not constants: MatMul sums them in another order,
    # and a last-bit difference may round to another fp16 value on the way
    rel_l2 = np.linalg.norm(uncached[0] - cached[0]) / np.linalg.norm(cached[0])
    assert rel_l2 < 1e-4 and np.isfinite(cached[0]).all()
    if not in_place:
        assert np.array_equal(uncached[0], cached[0], equal_nan=True)
    weightless = get_backend("onnxruntime-fp16", cache=False).load(path).run(feeds)[0]
    assert not np.allclose(weightless, cached[0], rtol=1e-3)  # w1 rounded (and 7e4 saturated) once not kept
