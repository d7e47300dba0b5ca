"""Benchmark: the cost of `accuracy bisect` in units of one reference pipeline run, measured side by side.

    python bench/bench_bisect.py [--repeat 3]

On the demo's tiny Stable Diffusion img2img pipeline (N = 4 models), in one process:
- one reference pipeline run, cold (open the reference sessions, then run) and warm (sessions open);
- a full bisect (both reference runs, isolated, all-candidate, every swap_in and leave_out), from a
  runner whose sessions are not yet open, like the cold reference run;
- the isolated phase alone (from the bisect's own timings), with and without opening the candidate
  sessions (compared with the cold and the warm reference run respectively);
- conversions: how many times the fp16 backend rewrote a model in the first and in the second bisect
  (a fresh fp16 cache for the first; the second must convert nothing).
Targets: full bisect <= (N + 2) x one reference run; isolated <= 1.5 x; second bisect converts 0.
Python/diffusers import time is left out of both sides of every ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved reference/bisect pairs (medians)")
    args = parser.parse_args()
    os.environ["ACCURACY_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-bisect-")  # cold fp16 cache
    from accuracy.backends.onnxrt_fp16 import loader as fp16_loader
    from accuracy.bisect.bisector import bisect_pipeline
    from accuracy.config import load_suite
    from accuracy.config.pipeline import load_pipeline_spec
    from accuracy.demo.story import write_demo_suite
    from accuracy.demo.tiny_sd import build_tiny_sd
    from accuracy.pipelines.runner import PipelineRunner

    conversions = [0]
    original = fp16_loader.emulate_fp16

    def counting(*a, **k):
        conversions[0] += 1
        return original(*a, **k)

    fp16_loader.emulate_fp16 = counting
    folder = build_tiny_sd(outlier=True, progress=lambda t: print(t, file=sys.stderr))
    spec = load_pipeline_spec(load_suite(write_demo_suite(folder)))
    n = len(spec.models)

    def reference_run() -> tuple[float, float, float]:
        runner = PipelineRunner(spec)
        wall, cpu = time.perf_counter(), time.process_time()
        runner.run()
        cold_wall, cold_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall = time.perf_counter()
        runner.run()
        warm_wall = time.perf_counter() - wall
        runner.close()
        return cold_wall, cold_cpu, warm_wall

    def bisect_run() -> dict:
        conversions[0] = 0
        runner = PipelineRunner(spec)
        wall, cpu = time.perf_counter(), time.process_time()
        result = bisect_pipeline(spec, runner=runner)
        runner.close()
        return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                "isolated": result["timings"]["isolated"], "load": result["timings"]["candidate_load"], "converted": conversions[0], "result": result}

    # Interleaved (reference, bisect, reference, bisect ...) so load from other processes hits both alike.
    first = bisect_run()  # fresh fp16 cache: converts every model once
    references, bisects = [reference_run()], []
    for _ in range(args.repeat):
        bisects.append(bisect_run())
        references.append(reference_run())
    cold = statistics.median(r[0] for r in references)
    cold_cpu = statistics.median(r[1] for r in references)
    warm = statistics.median(r[2] for r in references)
    full = statistics.median(b["wall"] for b in bisects)
    full_cpu = statistics.median(b["cpu"] for b in bisects)
    iso = statistics.median(b["isolated"] for b in bisects)
    load = statistics.median(b["load"] for b in bisects)
    result = bisects[0]["result"]

    print(f"pipeline: tiny SD img2img, N = {n} models ({', '.join(spec.models)}); "
          f"{spec.reference.name} -> {spec.candidate.name}; medians of {args.repeat}, interleaved")
    print(f"one reference run: cold {cold:.3f} s wall / {cold_cpu:.3f} s CPU (open sessions + run); warm {warm:.3f} s")
    print(f"bisect: {full:.3f} s wall / {full_cpu:.3f} s CPU; {result['pipeline_runs']} pipeline runs "
          f"(call cache hits {result['cache']['hits']}, misses {result['cache']['misses']}); "
          f"culprits {result['culprits']}")
    print(f"  full bisect / cold reference run = {full / cold:.2f} wall, {full_cpu / cold_cpu:.2f} CPU"
          f"  (target <= N+2 = {n + 2})")
    print(f"  full bisect / warm reference run = {full / warm:.2f} wall")
    print(f"  isolated (+ opening the candidate sessions, {load:.3f} s) / cold reference run = "
          f"{(iso + load) / cold:.2f} wall  (target <= 1.5)")
    print(f"  isolated (sessions open)         / warm reference run = {iso / warm:.2f} wall  (target <= 1.5)")
    print(f"first bisect (empty fp16 cache) {first['wall']:.3f} s converted {first['converted']} models; "
          f"later bisects converted {[b['converted'] for b in bisects]} (target 0: cache hit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
