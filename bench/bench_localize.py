"""Benchmark: what ``accuracy localize`` costs next to one plain inference of the same model.

    python bench/bench_localize.py [--repeat 3]          # whole commands on a ResNet-like model (default)
    python bench/bench_localize.py --mlp [--rows 1024] [--width 1024] [--blocks 8] [--segment-mb 32]
    python bench/bench_localize.py --external --repeat 1 # a model over 2 GB (external data)

Default: a model of real size and structure, built deterministically -- a ResNet-50-like network at
half width (bottleneck blocks of Conv + BatchNormalization + Relu, residual Adds; ~250 nodes, ~30 MB
of weights, a 1x3x160x160 input). Measured as whole commands, each a fresh process (interpreter,
imports, loading the feeds, the work), interleaved and repeated after one untimed warm-up round,
medians printed; byte code is cached as for an installed package (a private ``PYTHONPYCACHEPREFIX``):

* ``python -c`` plain ONNX Runtime inference (session + run), the unit;
* ``accuracy localize MODEL --inputs FEEDS.npz`` (fp16 emulation, every tensor compared);
* Polygraphy's mark-all workflow when ``polygraphy`` is installed: ``polygraphy run MODEL --onnxrt
  --onnx-outputs mark all --load-inputs ... --save-outputs ...`` (the peer; the ratio is printed).

Target: localize <= 2x a plain inference. Each command's peak RSS is printed too (measured once,
untimed, from a small launcher), and localize's time and memory as fractions of Polygraphy's. The
second figure is the old in-process one: the time inside localize split into model inference (ORT
runs of both sides), per-tensor metrics and the rest.

``--mlp`` and ``--external`` run the earlier in-process comparison (time and peak RSS against a plain
inference) on a synthetic MLP whose intermediates are several times its weights, or on a 2.25 GiB
external-data model.
"""

from __future__ import annotations

import argparse
import json
import os
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


def build_resnet(folder: Path, *, base: int = 32, size: int = 160, layers=(3, 4, 12, 3)) -> tuple[Path, Path, int, int]:
    """The ResNet-like bench model (deterministic); returns (model, feeds, weight bytes, node count)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def add(op: str, inputs: list[str], **attrs) -> str:
        name = f"{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{len(inits)}"))
        return add("Conv", [x, inits[-1].name], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def bn(x: str, c: int, gamma: float = 1.0) -> str:
        names = []
        for values in (np.full(c, gamma), rng.standard_normal(c) * 0.05, rng.standard_normal(c) * 0.05,
                       rng.uniform(0.8, 1.2, c)):
            inits.append(numpy_helper.from_array(values.astype(np.float32), f"bn{len(inits)}"))
            names.append(inits[-1].name)
        return add("BatchNormalization", [x, *names], epsilon=1e-5)

    x = add("Relu", [bn(conv("x", 3, base, 7, 2), base)])
    x = add("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = base
    for stage, blocks in enumerate(layers):
        width = base * 2 ** stage
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            h = add("Relu", [bn(conv(x, cin, width, 1), width)])
            h = add("Relu", [bn(conv(h, width, width, 3, stride), width)])
            h = bn(conv(h, width, width * 4, 1), width * 4, gamma=0.2)
            shortcut = x if cin == width * 4 and stride == 1 else bn(conv(x, cin, width * 4, 1, stride), width * 4)
            x = add("Relu", [add("Add", [h, shortcut])])
            cin = width * 4
    x = add("Flatten", [add("GlobalAveragePool", [x])])
    inits.append(numpy_helper.from_array((rng.standard_normal((cin, 1000)) / np.sqrt(cin)).astype(np.float32), "fc"))
    nodes.append(helper.make_node("MatMul", [x, "fc"], ["logits"], name="fc"))
    graph = helper.make_graph(nodes, "resnet_like", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "resnet_like.onnx"
    onnx.save(model, str(path))
    feeds = folder / "feeds.npz"
    np.savez(feeds, x=rng.standard_normal((1, 3, size, size)).astype(np.float32))
    return path, feeds, sum(numpy_helper.to_array(i).nbytes for i in inits), len(nodes)


PLAIN = ("import sys, numpy as np, onnxruntime as ort; "
         "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']); "
         "s.run(None, dict(np.load(sys.argv[2])))")


def whole_commands(model: Path, feeds: Path, folder: Path) -> dict[str, list[str]]:
    """The commands timed side by side: plain inference, localize, and Polygraphy when installed."""
    commands = {"plain inference": [sys.executable, "-c", PLAIN, str(model), str(feeds)],
                "accuracy localize": [sys.executable, "-m", "accuracy", "localize", str(model), "--inputs", str(feeds),
                                      "--json", str(folder / "localize.json")]}
    try:
        from polygraphy.json import save_json
    except ImportError:
        return commands
    inputs = folder / "inputs.json"
    save_json([dict(np.load(feeds))], str(inputs))
    polygraphy = Path(sys.executable).with_name("polygraphy")
    commands["polygraphy mark-all"] = [str(polygraphy), "run", str(model), "--onnxrt", "--onnx-outputs", "mark", "all",
                                       "--load-inputs", str(inputs), "--save-outputs", str(folder / "polygraphy.json")]
    return commands


_LAUNCHER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _peak_kib(command: list[str], env: dict) -> int:
    """The command's peak RSS (KiB), run once from a fresh interpreter that imports nothing."""
    launched = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *command], capture_output=True, text=True,
                              env=env, check=True)
    return int(launched.stdout.split()[-1])


def run_whole(args) -> None:
    import statistics

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc = subprocess.run([sys.executable, __file__, "--build", tmp], capture_output=True, text=True, check=True)
        model, feeds, weights, count = json.loads(proc.stdout.strip().splitlines()[-1])
        model, feeds = Path(model), Path(feeds)
        print(f"model: ResNet-like (Conv + BatchNormalization + Relu bottlenecks), {count} nodes, "
              f"{weights / 2**20:.1f} MiB of weights, input 1x3x160x160; medians of {args.repeat} interleaved runs")
        commands = whole_commands(model, feeds, folder)
        # as an installed package runs: byte code cached (pip compiles it; PYTHONDONTWRITEBYTECODE, set on
        # some machines, would recompile accuracy's modules in every command), in a private cache folder
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        for command in commands.values():  # untimed warm-up: the byte code and the OS file cache, both sides
            subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        # peak memory, once per command, untimed: through a small launcher, as a child's peak counts the
        # memory of the process it was forked from (this one holds far more than a fresh interpreter)
        peak = {name: _peak_kib(command, env) for name, command in commands.items()}
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}  # CPU seconds of the child, all threads
        for _ in range(args.repeat):
            for name, command in commands.items():
                start = time.perf_counter()
                child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
                stderr = child.stderr.read()
                _, status, usage = os.wait4(child.pid, 0)  # this child's own resource use
                seconds[name].append(time.perf_counter() - start)
                cpu[name].append(usage.ru_utime + usage.ru_stime)
                code = os.waitstatus_to_exitcode(status)
                if code not in (0, 1):
                    raise SystemExit(f"{name} failed ({code}): {stderr.decode(errors='replace')[-2000:]}")
        plain_s = statistics.median(seconds["plain inference"])
        for name, values in seconds.items():
            print(f"{name:<22} {statistics.median(values):7.3f} s  ({statistics.median(values) / plain_s:.2f}x plain), "
                  f"peak RSS {peak[name] / 1024:.0f} MiB")
        loc = statistics.median(seconds["accuracy localize"])
        print(f"localize / plain inference (whole commands): {loc / plain_s:.2f}  (target <= 2)")
        print(f"  in CPU time (user + system, all threads): "
              f"{statistics.median(cpu['accuracy localize']) / statistics.median(cpu['plain inference']):.2f}; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        if "polygraphy mark-all" in seconds:
            memory = peak["accuracy localize"] / peak["polygraphy mark-all"]
            print(f"localize / polygraphy mark-all: {loc / statistics.median(seconds['polygraphy mark-all']):.2f} "
                  f"of its time, {memory:.2f} of its peak memory")
        else:
            print("polygraphy not installed (pip install polygraphy): no peer ratio")
        proc = subprocess.run([sys.executable, __file__, "--child", "localize", str(model), str(feeds)],
                              capture_output=True, text=True, check=True)
        best = json.loads(proc.stdout.strip().splitlines()[-1])["out"]
        plain_in = plain(model, feeds)
        print(f"in one process: localize {best['seconds']:.3f} s = {best['inference']:.3f} s model inference (both "
              f"sides) + {best['metrics']:.3f} s per-tensor metrics + rest; plain {plain_in:.3f} s; "
              f"work ratio (ORT time in localize / plain inference) {best['inference'] / plain_in:.2f}")


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
        stream.compare_saturating

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

    sides.OnnxSide.run, loader.OnnxRuntimeSession.run_outputs, stream.compare_saturating = \
        timed_side, timed_outputs, timed_compare
    start = time.perf_counter()
    result = localize_model(model, dict(np.load(feeds)), "onnxruntime-fp16", segment_bytes=segment_mb << 20)
    total = time.perf_counter() - start
    first = result["first_divergent"]
    return {"seconds": total, **clock, "first": first and first["node"], "work": result["work"]}


def child(kind: str, model: Path, feeds: Path, segment_mb: int) -> None:
    out = plain(model, feeds) if kind == "plain" else localize(model, feeds, segment_mb)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": peak_kib, "out": out}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mlp", action="store_true", help="instead: the in-process comparison on a synthetic MLP")
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
        if not (args.external or args.mlp):
            print(json.dumps([str(p) if isinstance(p, Path) else p for p in build_resnet(folder)]))
            return
        made = build_external(folder) if args.external else build(folder, args.rows, args.width, args.blocks)
        print(json.dumps([str(made[0]), str(made[1]), made[2], made[3]]))
        return
    if not (args.external or args.mlp):
        run_whole(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--external"] if args.external else ["--mlp", "--rows", str(args.rows), "--width", str(args.width),
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
