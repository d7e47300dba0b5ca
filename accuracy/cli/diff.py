"""``accuracy diff EXPECTED OBTAINED``: two images (or two .npy arrays) judged by SSIM and PSNR,
with the other errors reported and, on request, a heat map / triptych / HTML report to look at.

The guide's case: ``fantasy_landscape.png`` (ONNX on the CPU) against ``fantasy_landscape_npu.png``.
Exit 0 when the thresholds are met, 1 when not, 2 for unreadable files or sizes that differ.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from accuracy.cli.common import emit_json, exit_code_for, say
from accuracy.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("expected", metavar="EXPECTED", help="reference image (PNG/JPEG) or .npy array")
    parser.add_argument("obtained", metavar="OBTAINED", help="image or .npy array to judge against it")
    parser.add_argument("--ssim-min", type=float, default=0.98, help="lowest passing SSIM (default 0.98)")
    parser.add_argument("--psnr-min", type=float, default=30.0, help="lowest passing PSNR in dB (default 30)")
    parser.add_argument("--max-abs", type=float, default=None, help="largest passing per-pixel error (pixel units)")
    parser.add_argument("--data-range", type=float, default=None,
                        help="value range for SSIM/PSNR (default: 255 / 65535 by bit depth; a float array's own range)")
    parser.add_argument("--resize", action="store_true", help="resize OBTAINED to EXPECTED's size instead of refusing")
    parser.add_argument("--diff-image", metavar="PATH", help="write a heat map of the per-pixel difference (PNG)")
    parser.add_argument("--triptych", metavar="PATH", help="write expected | obtained | difference side by side (PNG)")
    parser.add_argument("--report", metavar="PATH", help="write a self-contained HTML report")


def _describe(loaded: Any) -> str:
    array = loaded.array
    if loaded.mode == "array":
        return f"array {'x'.join(map(str, array.shape))} {array.dtype}"
    return f"{loaded.size[0]}x{loaded.size[1]} {loaded.mode}" + (" (opaque alpha dropped)" if loaded.dropped_alpha else "")


def _prepare(args: argparse.Namespace):
    """Read both files and bring them to one layout, dtype scale and size (or refuse, naming the file)."""
    from accuracy.compare.images import as_image_layout
    from accuracy.imageio import read_comparable, resize_to

    expected, obtained = read_comparable(args.expected), read_comparable(args.obtained)
    a, b = expected.array, obtained.array
    data_range = expected.data_range
    if (expected.mode == "array") != (obtained.mode == "array"):
        raise UsageError("compare an image with an image, or a .npy array with a .npy array")
    if expected.mode == "array":
        a_image, b_image = as_image_layout(a), as_image_layout(b)
        if a_image is not None and b_image is not None:
            a, b = a_image, b_image
    elif a.dtype != b.dtype:  # 8-bit against 16-bit: compare both scaled to 0..1
        a, b, data_range = a / expected.data_range, b / obtained.data_range, 1.0
    channels_a = a.shape[2] if a.ndim == 3 else 1
    channels_b = b.shape[2] if b.ndim == 3 else 1
    if expected.mode != "array" and channels_a != channels_b:
        raise InputError(f"is {obtained.mode} but the expected image {args.expected} is {expected.mode}; "
                         "convert one of them", path=args.obtained)
    if a.shape != b.shape:
        if not args.resize or expected.mode == "array":
            what = "size" if expected.mode != "array" else "shape"
            raise InputError(f"{what} {_describe(obtained)} differs from the expected {_describe(expected)} "
                             f"({args.expected})" + ("; pass --resize to resample it" if expected.mode != "array" else ""),
                             path=args.obtained)
        b = resize_to(b, a.shape)
    if args.data_range is not None:
        if not args.data_range > 0:
            raise UsageError("--data-range must be > 0")
        data_range = args.data_range
    return expected, obtained, a, b, data_range


def _array_metrics(a: np.ndarray, b: np.ndarray, *, data_range: float, thresholds) -> dict:
    """Arrays that are not images: everything but SSIM."""
    from accuracy.compare.images import judge, mean_squared_error, peak_signal_noise_ratio
    from accuracy.compare.tensors import compare_tensors

    tensor = compare_tensors(a, b).to_dict()
    import numpy as np

    both = np.isfinite(a) & np.isfinite(b)  # compare's rule: agreeing inf/NaN are equal, one-sided ones fail
    flat_a, flat_b = np.where(both, a, 0).reshape(-1, 1), np.where(both, b, 0).reshape(-1, 1)
    metrics = {
        "ssim": None,
        "psnr": peak_signal_noise_ratio(flat_a, flat_b, data_range=data_range),
        "mse": mean_squared_error(flat_a, flat_b),
        **{k: tensor[k] for k in ("max_abs", "mean_abs", "cosine", "rel_l2", "max_rel")},
        "data_range": data_range,
    }
    from dataclasses import replace

    failures = [f for f in tensor["failures"] if "non-finite" in f]
    failures += judge({**metrics, "ssim": 1.0}, replace(thresholds, ssim_min=None))
    return {"metrics": metrics, "failures": failures, "notes": ["ssim needs an image-shaped array; not judged"]}


def _check_thresholds(args: argparse.Namespace) -> None:
    """Every bound given on the command line is a finite number (``nan`` would pass or fail everything)."""
    import math

    for option in ("ssim_min", "psnr_min", "max_abs", "data_range"):
        value = getattr(args, option)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{option.replace('_', '-')} must be a finite number, not {value}")
    if args.ssim_min is not None and not -1.0 <= args.ssim_min <= 1.0:
        raise UsageError(f"--ssim-min must be in [-1, 1] (SSIM is at most 1: every image would fail), not {args.ssim_min}")


def run(args: argparse.Namespace) -> int:
    from accuracy.compare.images import ImageThresholds, compare_images

    _check_thresholds(args)
    expected, obtained, a, b, data_range = _prepare(args)
    thresholds = ImageThresholds(ssim_min=args.ssim_min, psnr_min=args.psnr_min, max_abs=args.max_abs)
    image_like = a.ndim in (2, 3) and min(a.shape[:2]) >= 3 and (a.ndim == 2 or a.shape[2] <= 4)
    if image_like:
        comparison = compare_images(a, b, data_range=data_range, thresholds=thresholds)
        body = {"metrics": comparison.metrics(), "failures": list(comparison.failures), "notes": []}
    else:
        body = _array_metrics(a, b, data_range=data_range, thresholds=thresholds)
    verdict = "fail" if body["failures"] else "pass"
    result = {
        "verdict": verdict,
        "expected": str(args.expected),
        "obtained": str(args.obtained),
        "resized": bool(args.resize and expected.array.shape != obtained.array.shape),
        "thresholds": {k: v for k, v in vars(thresholds).items() if v is not None},
        **body,
        "pictures": {},
    }
    if image_like:
        result["pictures"] = _write_pictures(args, a, b, data_range)
    _print(expected, obtained, result)
    emit_json(args, result)
    if args.report:
        from accuracy.report import write_report

        write_report(args.report, [{"kind": "diff", "data": result, "title": "accuracy diff",
                                    "images": {"expected": a, "obtained": b}}], title="accuracy diff")
        say(f"report: {args.report}")
    return exit_code_for(verdict)


def _write_pictures(args: argparse.Namespace, a: np.ndarray, b: np.ndarray, data_range: float) -> dict[str, str]:
    from accuracy.compare.images import absolute_difference_map
    from accuracy.io import write_bytes_atomic
    from accuracy.report.pictures import heat_map, png_bytes, triptych

    written = {}
    if args.diff_image:
        write_bytes_atomic(args.diff_image, png_bytes(heat_map(absolute_difference_map(a, b))))
        written["diff_image"] = str(args.diff_image)
    if args.triptych:
        write_bytes_atomic(args.triptych, png_bytes(triptych(a, b, data_range=data_range)))
        written["triptych"] = str(args.triptych)
    return written


def _print(expected: Any, obtained: Any, result: dict) -> None:
    say(f"expected  {expected.path}  {_describe(expected)}")
    say(f"obtained  {obtained.path}  {_describe(obtained)}" + ("  (resized)" if result["resized"] else ""))
    metrics, bounds = result["metrics"], result["thresholds"]
    for name, unit in (("ssim", ""), ("psnr", " dB"), ("mse", ""), ("max_abs", ""), ("mean_abs", ""), ("cosine", "")):
        value = metrics.get(name)
        if value is None:
            continue
        bound = bounds.get(f"{name}_min", bounds.get(name))
        relation = "" if bound is None else f"   ({'min' if name in ('ssim', 'psnr') else 'max'} {bound})"
        say(f"  {name:<9}{value:.6g}{unit}{relation}")
    for note in result["notes"]:
        say(f"  note: {note}")
    for kind, path in result["pictures"].items():
        say(f"{kind}: {path}")
    say(result["verdict"].upper() + (": " + "; ".join(result["failures"]) if result["failures"] else ""))
    if result["failures"] and not result["pictures"] and metrics.get("ssim") is not None:
        say("to see where they differ: --diff-image diff.png (heat map) or --triptych side.png")
