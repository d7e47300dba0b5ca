"""``accuracy localize MODEL.onnx --candidate BACKEND|DUMPDIR --inputs FEEDS.npz``: the operator where error enters.

Exit 1 iff a divergence is found; 2 when nothing could be compared or the input is bad.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accuracy.cli.common import emit_json, exit_code_for, finite_float, say, similarity_bound, warn
from accuracy.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.onnx", help="the fp32 ONNX model (the reference)")
    parser.add_argument("--candidate", default="onnxruntime-fp16", metavar="BACKEND|DUMPDIR",
                        help="onnxruntime-fp16 (default), onnxruntime, or a folder of .npy tensors dumped on the device")
    parser.add_argument("--inputs", required=True, metavar="FEEDS.npz", help="the model's inputs by name (.npz)")
    parser.add_argument("--map", dest="name_map", metavar="FILE",
                        help='JSON {"onnx tensor": "dump file"} for a dump folder whose names differ')
    parser.add_argument("--cosine-min", type=similarity_bound, default=0.99, help="per-tensor cosine bound (default 0.99)")
    parser.add_argument("--rel-l2-max", type=_bound, default=0.15,
                        help="per-tensor relative L2 error bound, |c - r| / |r| (default 0.15: catches scale errors "
                             "cosine cannot see; 'none' turns it off)")
    parser.add_argument("--max-abs", type=finite_float, default=None, help="per-tensor max abs error bound")
    parser.add_argument("--max-rel", type=finite_float, default=None, help="per-tensor max element-wise relative error bound")
    parser.add_argument("--keep-fp32", default="", metavar="NODE,...", help="nodes already kept in fp32")
    parser.add_argument("--suggest-fp32", action="store_true",
                        help="search the smallest set of nodes to keep in fp32 and verify it")
    parser.add_argument("--out", metavar="DIR", help="write localize.json, the keep-list, repaired model, snippets here")
    parser.add_argument("--segment-mb", type=int, default=16, help="tensor memory per streamed segment (MiB)")


def run(args: argparse.Namespace) -> int:
    from accuracy.compare.tensors import TensorThresholds
    from accuracy.imageio import read_npz
    from accuracy.io import write_json_atomic
    from accuracy.localize import localize_model

    if args.segment_mb < 1:
        raise UsageError(f"--segment-mb must be at least 1 (MiB), not {args.segment_mb}")
    feeds = read_npz(args.inputs)
    keep = [n for n in args.keep_fp32.split(",") if n]
    result = localize_model(
        args.model, feeds, args.candidate, feeds_source=args.inputs, name_map=args.name_map,
        thresholds=TensorThresholds(cosine_min=args.cosine_min, max_abs=args.max_abs, rel_l2_max=args.rel_l2_max,
                                    max_rel=args.max_rel),
        suggest_fp32=args.suggest_fp32, out_dir=args.out, keep_fp32=keep, segment_bytes=args.segment_mb << 20,
        progress=_progress,
    )
    _print(result)
    emit_json(args, result)
    if args.out:
        write_json_atomic(Path(args.out) / "localize.json", result)
    return exit_code_for(result["verdict"])


def _bound(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = finite_float(text)  # 'inf' would turn the bound off silently: 'none' says so
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _progress(done: int, total: int) -> None:
    """Progress on stderr for models streamed in many segments (stdout stays the report)."""
    if total >= 8 and (done == total or done % max(1, total // 10) == 0):
        warn(f"[localize] segment {done}/{total}")


def _print(result: dict) -> None:
    for line in result["warnings"]:
        warn(f"warning: {line}")
    emulation = result.get("emulation")
    if emulation:
        inside = f", {emulation['in_subgraphs']} inside If/Loop/Scan bodies" if emulation["in_subgraphs"] else ""
        say(f"fp16 emulation: {emulation['emulated']} node(s) rounded, {emulation['not_emulated']} could not be"
            f"{inside}")
    compared = [r for r in result["tensors"] if r["passed"] is not None]
    diverged = [r for r in compared if not r["passed"]]
    say(f"{result['model']} vs {result['candidate']}: {len(compared)} tensors compared, {len(diverged)} diverge")
    if diverged:
        say(f"{'node':<28} {'op':<18} {'status':<11} {'cosine':>10} {'local cos':>10} {'non-finite':>10}")
        for r in diverged:
            local = r.get("local") or {}
            say(f"{r['node'][:28]:<28} {r['op_type'][:18]:<18} {r['status']:<11} {_num(r['metrics']['cosine']):>10} "
                f"{_num(local.get('cosine')):>10} {r['metrics']['nonfinite_obtained']:>10}")
    first = result["first_divergent"]
    if first:
        say(f"error enters at {first['node']} ({first['op_type']}), tensor {first['tensor']}; "
            "downstream nodes marked 'inherited' only carry it")
    elif diverged:
        exact = [r for r in diverged if (r["metrics"] or {}).get("mean_abs", 0.0) is None]  # no float metrics
        if exact and len(exact) == len(diverged):  # an integer/bool/text result flips, every float tensor passed
            exact = exact[0]
            say(f"no node's float error passes the bounds, but {exact['tensor']} ({exact['op_type']}) changes "
                "(exact values or shape): fp16 rounding within the bounds upstream of it flips it")
        else:
            say("no single node introduces the error on its own: it accumulates")
    repair = result.get("repair")
    if repair:
        if repair["passed"] and repair["keep_fp32"]:
            say(f"keep in fp32: {', '.join(repair['keep_fp32'])} (verified: the model passes under fp16 emulation, "
                f"{repair['trials']} trials; the model converted with it by onnxruntime.transformers.float16 passes "
                "in plain ONNX Runtime)")
        else:
            say(f"repair: {repair['note'] or 'none needed'}")
        for kind, path in repair.get("files", {}).items():
            say(f"  {kind}: {path}")
    say(f"verdict: {result['verdict']}")


def _num(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
