"""Benchmark: ``accuracy bisect --suggest-fp32`` on a three-model pipeline, in units of one reference run.

    python bench/bench_repair.py [--repeat 3]

Builds (deterministically, in a temporary folder) a three-model pipeline: ``det`` a ResNet-like
network (Conv + BatchNormalization + Relu bottlenecks) whose head L2-normalises its features with a
sum of squares that overflows fp16, ``cls`` and ``rec`` small MLP heads. The candidate is the
``onnxruntime-fp16`` emulation; ``det`` is the culprit. Measured side by side in one process,
interleaved, medians printed:

* one reference pipeline run, cold (open the reference sessions, then run);
* the whole bisect with ``--suggest-fp32`` (reference and noise runs, isolated, swaps, localize,
  the keep-fp32 search judged on ``det``'s recorded calls, the pipeline's confirmation, the repaired
  model converted by onnxruntime.transformers.float16 and checked in plain ONNX Runtime, the final
  all-candidate verification).

Target: <= 10x one reference run. Also printed: trials, culprit-only model runs, pipeline runs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ENTRY = '''\
def run(models, inputs):
    feat = models["det"](x=inputs["x"])[0]
    scores = models["cls"](x=feat)[0]
    return {"y": models["rec"](x=scores)[0]}
'''

SUITE = '''\
[pipeline]
entry = "pipeline.py:run"
[pipeline.models]
det = "det.onnx"
cls = "cls.onnx"
rec = "rec.onnx"
[pipeline.inputs]
x = "x.npy"
[reference]
backend = "onnxruntime"
[candidate]
backend = "onnxruntime-fp16"
[compare]
cosine_min = 0.999
'''


def build(folder: Path, size: int = 128) -> Path:
    import onnx
    from bench_localize import build_resnet
    from onnx import TensorProto, helper, numpy_helper

    model_path, feeds, _, _ = build_resnet(folder, size=size)
    det = onnx.load(str(model_path))
    det.graph.output.pop()
    det.graph.node.extend([
        helper.make_node("Mul", ["logits", "gain"], ["amplified"], name="head_gain"),
        helper.make_node("ReduceSumSquare", ["amplified"], ["ss"], name="head_sum_sq", axes=[-1], keepdims=1),
        helper.make_node("Sqrt", ["ss"], ["norm"], name="head_norm"),
        helper.make_node("Div", ["amplified", "norm"], ["feat"], name="head_unit"),
    ])
    det.graph.initializer.append(numpy_helper.from_array(np.array(30.0, np.float32), "gain"))
    det.graph.output.append(helper.make_tensor_value_info("feat", TensorProto.FLOAT, [1, 1000]))
    onnx.save(det, str(folder / "det.onnx"))
    rng = np.random.default_rng(1)
    for name, widths in (("cls", (1000, 256, 1000)), ("rec", (1000, 128, 64))):
        nodes, inits, current = [], [], "x"
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            inits.append(numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"))
            nodes += [helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"], name=f"{name}_mm{i}"),
                      helper.make_node("Tanh", [f"m{i}"], [f"t{i}"], name=f"{name}_tanh{i}")]
            current = f"t{i}"
        graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, widths[0]])],
                                  [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, widths[-1]])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(folder / f"{name}.onnx"))
    np.save(folder / "x.npy", np.load(feeds)["x"])
    (folder / "pipeline.py").write_text(ENTRY)
    (folder / "suite.toml").write_text(SUITE)
    return folder / "suite.toml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved reference/repair pairs (medians)")
    parser.add_argument("--size", type=int, default=128, help="det's input is 1x3xSIZExSIZE (default 128)")
    args = parser.parse_args()
    os.environ["ACCURACY_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-repair-")
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.bisect.localize import LocalizeRequest
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec
    from accuracy.pipelines.runner import PipelineRunner

    with tempfile.TemporaryDirectory() as tmp:
        spec = load_pipeline_spec(load_suite(build(Path(tmp), args.size)))

        cpu = {"reference": [], "repair": []}  # CPU seconds of the process (all threads): less swayed by other load

        def reference_run() -> float:
            runner = PipelineRunner(spec)
            start, cpu_start = time.perf_counter(), time.process_time()
            runner.run()
            elapsed = time.perf_counter() - start
            cpu["reference"].append(time.process_time() - cpu_start)
            runner.close()
            return elapsed

        def repair_run(number: int) -> tuple[float, dict]:
            request = LocalizeRequest(suggest_fp32=True, out_dir=Path(tmp) / f"out{number}")
            start, cpu_start = time.perf_counter(), time.process_time()
            result = bisect_pipeline(spec, localize=request)
            cpu["repair"].append(time.process_time() - cpu_start)
            return time.perf_counter() - start, result

        repair_run(-1)  # warm-up: the fp16 cache and the OS file cache, for both sides alike
        cpu["repair"].clear()
        references, repairs = [reference_run()], []
        for number in range(args.repeat):
            repairs.append(repair_run(number))
            references.append(reference_run())
        reference = statistics.median(references)
        whole = statistics.median(seconds for seconds, _ in repairs)
        result = repairs[0][1]
        repair = result["models"]["det"]["localize"]["repair"]
        print(f"pipeline: det (ResNet-like, input 1x3x{args.size}x{args.size}, + an fp16-overflowing L2 norm) -> cls -> "
              "rec; onnxruntime -> "
              f"onnxruntime-fp16; medians of {args.repeat}, interleaved")
        print(f"one reference run (open sessions + run): {reference:.3f} s")
        print(f"bisect --suggest-fp32: {whole:.3f} s; culprits {result['culprits']}; keep_fp32 {repair['keep_fp32']} "
              f"passed {repair['passed']} (repaired model in plain ORT: {repair.get('repaired_model', {}).get('passed')}); "
              f"{repair['trials']} trials, {repair['model_runs']} culprit-only model runs, "
              f"{repair['pipeline_runs']} pipeline runs in the search + {result['pipeline_runs']} in bisect")
        print(f"bisect --suggest-fp32 / one reference run: {whole / reference:.2f}  (target <= 10)")
        cpu_ratio = statistics.median(cpu["repair"]) / statistics.median(cpu["reference"])
        print(f"  in CPU time (process, all threads): {cpu_ratio:.2f}; load average {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} CPUs (a busy machine stretches the short reference run least)")
        localize_s = statistics.median(r["timings"].get("localize", 0.0) for _, r in repairs)
        if localize_s:
            print(f"  of which localize + repair: {localize_s:.3f} s ({localize_s / reference:.2f}x one reference run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
