"""Benchmark: what ``accuracy localize`` costs next to one plain inference of the same model.

    python bench/bench_localize.py [--rows 1024] [--width 1024] [--blocks 8] [--segment-mb 32]
    python bench/bench_localize.py --external --repeat 1   # a model over 2 GB (external data)

Builds (deterministically, in a temporary folder) an MLP whose intermediate tensors total several
times its weights, then measures side by side in one run:

* time: a plain ONNX Runtime inference (session + run, fp32) against ``localize_model`` with the
  ``onnxruntime-fp16`` candidate (the target: <= 3 plain inferences of work, plus single-node runs
  for the flagged nodes). Printed: the model-inference work ratio (ORT time inside localize) and the
  whole wall-time ratio, which also pays the per-tensor metrics of ``accuracy.compare.tensors``;
* memory: peak RSS (``resource.getrusage``) of a subprocess doing only the plain inference against a
  subprocess doing only the localisation (the target: <= 2x).

The model carries an fp16 hazard in its last block so localisation has flagged nodes to re-run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(folder: Path, rows: int, width: int, blocks: int) -> tuple[Path, Path, int, int]:
    """The bench model and its feeds; returns (model, feeds, weight bytes, intermediate bytes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    current = "x"
    for b in range(blocks):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{b}"), numpy_helper.from_array(np.full(width, 0.01, np.float32), f"b{b}")]
        nodes += [
            helper.make_node("MatMul", [current, f"w{b}"], [f"mm{b}"], name=f"mm{b}"),
            helper.make_node("Add", [f"mm{b}", f"b{b}"], [f"ad{b}"], name=f"bias{b}"),
            helper.make_node("Relu", [f"ad{b}"], [f"re{b}"], name=f"relu{b}"),
            helper.make_node("Add", [f"re{b}", current], [f"rs{b}"], name=f"residual{b}"),
            helper.make_node("Mul", [f"rs{b}", "half"], [f"h{b}"], name=f"scale{b}"),
        ]
        current = f"h{b}"
    # the hazard: squares past fp16's range, then a normalisation that inherits the inf
    nodes += [
        helper.make_node("Mul", [current, "big"], ["amp"], name="amplify"),
        helper.make_node("ReduceSumSquare", ["amp"], ["ss"], name="sum_sq", axes=[-1], keepdims=1),
        helper.make_node("Sqrt", ["ss"], ["n"], name="norm"),
        helper.make_node("Div", ["amp", "n"], ["y"], name="unit"),
    ]
    inits += [numpy_helper.from_array(np.array(0.5, np.float32), "half"),
              numpy_helper.from_array(np.array(200.0, np.float32), "big")]
    graph = helper.make_graph(nodes, "bench_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "bench.onnx"
    onnx.save(model, str(path))
    feeds = folder / "feeds.npz"
    np.savez(feeds, x=rng.uniform(0.0, 1.0, (rows, width)).astype(np.float32))
    weight_bytes = sum(numpy_helper.to_array(i).nbytes for i in inits)
    intermediate_bytes = (len(nodes) - 2) * rows * width * 4 + 2 * rows * 4
    return path, feeds, weight_bytes, intermediate_bytes


def build_external(folder: Path, width: int = 8192, blocks: int = 9) -> tuple[Path, Path, int, int]:
    """A model over 2 GB whose weights live in an external-data file: ``blocks`` MatMuls with
    ``width x width`` fp32 weights, then an fp16-overflowing sum of squares."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, current = [], [], "x"
    for b in range(blocks):
        w = rng.standard_normal((width, width), dtype=np.float32) / np.float32(np.sqrt(width))
        inits.append(numpy_helper.from_array(w, f"w{b}"))
        nodes.append(helper.make_node("MatMul", [current, f"w{b}"], [f"h{b}"], name=f"mm{b}"))
        current = f"h{b}"
    nodes += [helper.make_node("ReduceSumSquare", [current], ["ss"], name="sum_sq", axes=[-1], keepdims=1),
              helper.make_node("Div", [current, "ss"], ["y"], name="div")]
    graph = helper.make_graph(nodes, "bench_external", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "external.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="external.data", size_threshold=1024)
    feeds = folder / "feeds.npz"
    np.savez(feeds, x=np.full((1, width), 30.0, np.float32))
    return path, feeds, blocks * width * width * 4, (blocks + 2) * width * 4


def plain(model: Path, feeds: Path) -> float:
    import onnxruntime as ort

    start = time.perf_counter()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    session.run(None, dict(np.load(feeds)))
    return time.perf_counter() - start


def localize(model: Path, feeds: Path, segment_mb: int = 16) -> dict:
    """Run localize, timing apart: model-inference work (ORT runs of the segments), single-node runs,
    and the per-tensor metrics (accuracy.compare.tensors)."""
    from accuracy.backends.onnxrt import loader
    from accuracy.localize import localize_model, sides, stream

    clock = {"single_node": 0.0, "inference": 0.0, "metrics": 0.0}
    original_run, original_outputs, original_compare = sides.OnnxSide.run, loader.OnnxRuntimeSession.run_outputs, \
        stream.compare_tensors

    def timed_side(self, part, *args, **kwargs):
        start = time.perf_counter()
        out = original_run(self, part, *args, **kwargs)
        if len(part.graph.node) == 1 and not kwargs.get("float_tensors") and self.label != "reference":
            clock["single_node"] += time.perf_counter() - start
        return out

    def timed_outputs(self, *args, **kwargs):
        start = time.perf_counter()
        out = original_outputs(self, *args, **kwargs)
        clock["inference"] += time.perf_counter() - start
        return out

    def timed_compare(*args, **kwargs):
        start = time.perf_counter()
        out = original_compare(*args, **kwargs)
        clock["metrics"] += time.perf_counter() - start
        return out

    sides.OnnxSide.run, loader.OnnxRuntimeSession.run_outputs, stream.compare_tensors = \
        timed_side, timed_outputs, timed_compare
    start = time.perf_counter()
    result = localize_model(model, dict(np.load(feeds)), "onnxruntime-fp16", segment_bytes=segment_mb << 20)
    total = time.perf_counter() - start
    return {"seconds": total, **clock, "first": result["first_divergent"]["node"], "work": result["work"]}


def child(kind: str, model: Path, feeds: Path, segment_mb: int) -> None:
    out = plain(model, feeds) if kind == "plain" else localize(model, feeds, segment_mb)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": peak_kib, "out": out}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--segment-mb", type=int, default=16, help="localize's segment budget (its default: 16)")
    parser.add_argument("--external", action="store_true",
                        help="instead: a 2.25 GiB external-data model (needs ~5 GB of disk and RAM; minutes)")
    parser.add_argument("--build", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODEL", "FEEDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.segment_mb)
        return
    if args.build:  # in its own process: Linux keeps a parent's peak RSS in the children it spawns
        folder = Path(args.build)
        made = build_external(folder) if args.external else build(folder, args.rows, args.width, args.blocks)
        print(json.dumps([str(made[0]), str(made[1]), made[2], made[3]]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--external"] if args.external else ["--rows", str(args.rows), "--width", str(args.width),
                                                       "--blocks", str(args.blocks)]
        proc = subprocess.run([sys.executable, __file__, "--build", tmp, *flags], capture_output=True, text=True,
                              check=True)
        model, feeds, weights, intermediates = json.loads(proc.stdout.strip().splitlines()[-1])
        model, feeds = Path(model), Path(feeds)
        if args.external:
            print(f"model: external data, weights {weights / 2**30:.2f} GiB (over protobuf's 2 GB limit)")
        else:
            print(f"model: {args.blocks} blocks, {args.rows}x{args.width}; weights {weights / 2**20:.1f} MiB, "
                  f"intermediates {intermediates / 2**20:.1f} MiB ({intermediates / weights:.1f}x the weights)")
        runs = {"plain": [], "localize": []}
        for _ in range(args.repeat):  # interleaved, so machine load hits both alike
            for kind in ("plain", "localize"):
                proc = subprocess.run([sys.executable, __file__, "--child", kind, str(model), str(feeds),
                                       "--segment-mb", str(args.segment_mb)],
                                      capture_output=True, text=True, check=True)
                runs[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        plain_s = min(r["out"] for r in runs["plain"])
        best = min(runs["localize"], key=lambda r: r["out"]["seconds"])["out"]
        plain_kib = min(r["peak_kib"] for r in runs["plain"])
        loc_kib = min(r["peak_kib"] for r in runs["localize"])
        work = best["seconds"] - best["single_node"]
        print(f"plain inference (session + run): {plain_s:.3f} s, peak RSS {plain_kib / 1024:.0f} MiB")
        print(f"localize: {best['seconds']:.3f} s = {best['inference']:.3f} s model inference (both sides, "
              f"{best['work']['segments']} segments) + {best['metrics']:.3f} s per-tensor metrics + "
              f"{best['single_node']:.3f} s in {best['work']['single_node_runs']} single-node runs + rest; "
              f"peak RSS {loc_kib / 1024:.0f} MiB; first divergent: {best['first']}")
        print(f"inference work ratio (ORT time in localize / plain inference): {best['inference'] / plain_s:.2f}"
              "  (target <= 3)")
        print(f"time ratio (localize without single-node runs / plain): {work / plain_s:.2f}")
        print(f"time ratio (all of localize / plain): {best['seconds'] / plain_s:.2f}")
        print(f"peak memory ratio (localize / plain): {loc_kib / plain_kib:.2f}  (target <= 2)")


if __name__ == "__main__":
    main()
