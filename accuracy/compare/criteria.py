"""Judge a pipeline's outputs against a suite's ``[compare]`` criteria.

Tensor bounds (``cosine_min``, ``max_abs``, ``rel_l2_max``, ``max_rel``) go through
``accuracy.compare.tensors``; image bounds (``ssim_min``, ``psnr_min``) through
``accuracy.compare.images`` and apply to outputs shaped like images (``(H, W, C)`` or a batch
``(N, H, W, C)`` with C in 1..4). Pure: arrays in, a ``Judgement`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accuracy.compare.tensors import TensorThresholds, compare_tensors


@dataclass(frozen=True)
class Criteria:
    """The bounds of ``[compare]``; ``None`` disables one. ``outputs`` limits the judged outputs."""

    cosine_min: float | None = 0.99
    max_abs: float | None = None
    rel_l2_max: float | None = None
    max_rel: float | None = None
    ssim_min: float | None = None
    psnr_min: float | None = None
    data_range: float | None = None
    outputs: tuple[str, ...] = ()

    @property
    def tensor_thresholds(self) -> TensorThresholds:
        return TensorThresholds(cosine_min=self.cosine_min, max_abs=self.max_abs, rel_l2_max=self.rel_l2_max,
                                max_rel=self.max_rel)


@dataclass(frozen=True)
class Judgement:
    """Per-output metrics and whether every judged output met the criteria."""

    passed: bool
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: tuple[str, ...] = ()

    @property
    def nonfinite(self) -> bool:
        return any(o.get("nonfinite_obtained", 0) > o.get("nonfinite_expected", 0) for o in self.outputs.values())

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        return "non-finite" if self.nonfinite else "fail"

    def worst(self, metric: str = "cosine") -> float | None:
        values = [o[metric] for o in self.outputs.values() if isinstance(o.get(metric), (int, float))]
        if not values:
            return None
        return min(values) if metric in ("cosine", "ssim", "psnr") else max(values)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "passed": self.passed, "failures": list(self.failures),
                "outputs": self.outputs}


def is_image_like(array: np.ndarray) -> bool:
    return array.ndim in (3, 4) and 1 <= array.shape[-1] <= 4 and array.shape[-2] >= 7 and array.shape[-3] >= 7


def judge_outputs(expected: Mapping[str, np.ndarray], obtained: Mapping[str, np.ndarray], *,
                  criteria: Criteria = Criteria()) -> Judgement:
    """Compare every expected output (or ``criteria.outputs``) with the obtained one.

    An output missing from ``obtained`` or of another shape fails with a message saying so.
    """
    names = list(criteria.outputs) or list(expected)
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for name in names:
        if name not in expected:
            failures.append(f"{name}: not an output of the reference (it has {', '.join(expected)})")
            continue
        if name not in obtained:
            failures.append(f"{name}: missing from the candidate's outputs")
            continue
        ref, got = np.asarray(expected[name]), np.asarray(obtained[name])
        if ref.shape != got.shape:
            failures.append(f"{name}: shape {got.shape} differs from the reference's {ref.shape}")
            continue
        comparison = compare_tensors(ref, got, thresholds=criteria.tensor_thresholds)
        record = comparison.to_dict()
        output_failures = list(comparison.failures)
        if (criteria.ssim_min is not None or criteria.psnr_min is not None) and is_image_like(ref):
            output_failures += _judge_image(ref, got, criteria, record)
        record["passed"] = not output_failures
        record["failures"] = output_failures
        results[name] = record
        failures += [f"{name}: {text}" for text in output_failures]
    return Judgement(passed=not failures, outputs=results, failures=tuple(failures))


def _judge_image(ref: np.ndarray, got: np.ndarray, criteria: Criteria, record: dict[str, Any]) -> list[str]:
    ssim_fn, psnr_fn = _image_metrics()
    data_range = criteria.data_range or (255.0 if np.issubdtype(ref.dtype, np.integer) else
                                         1.0 if ref.min() >= 0 and ref.max() <= 1 else float(ref.max() - ref.min()) or 1.0)
    batch = ref.reshape((-1,) + ref.shape[-3:]) if ref.ndim == 4 else ref[None]
    batch_got = got.reshape(batch.shape)
    failures: list[str] = []
    finite = bool(np.isfinite(got).all())
    ssims = [float(ssim_fn(a.astype(np.float64), b.astype(np.float64), data_range=data_range)) if finite else float("nan")
             for a, b in zip(batch, batch_got)]
    psnrs = [float(psnr_fn(a.astype(np.float64), b.astype(np.float64), data_range=data_range)) if finite else float("nan")
             for a, b in zip(batch, batch_got)]
    record["ssim"], record["psnr"], record["data_range"] = min(ssims), min(psnrs), data_range
    if criteria.ssim_min is not None and not (record["ssim"] >= criteria.ssim_min):
        failures.append(f"ssim {record['ssim']:.4g} < {criteria.ssim_min}")
    if criteria.psnr_min is not None and not (record["psnr"] >= criteria.psnr_min):
        failures.append(f"psnr {record['psnr']:.4g} dB < {criteria.psnr_min}")
    return failures


def _image_metrics():
    """``accuracy.compare.images`` when present, else scikit-image's metrics (same signature)."""
    try:
        from accuracy.compare.images import peak_signal_noise_ratio, structural_similarity

        def ssim(a, b, *, data_range):
            return _scalar(structural_similarity(a, b, data_range=data_range))

        def psnr(a, b, *, data_range):
            return _scalar(peak_signal_noise_ratio(a, b, data_range=data_range))

        return ssim, psnr
    except ImportError:
        from skimage.metrics import peak_signal_noise_ratio as sk_psnr
        from skimage.metrics import structural_similarity as sk_ssim

        def ssim(a, b, *, data_range):
            window = min(7, min(a.shape[:2]) // 2 * 2 - 1 if min(a.shape[:2]) < 7 else 7)
            return sk_ssim(a, b, data_range=data_range, channel_axis=-1, win_size=window)

        return ssim, sk_psnr


def _scalar(value: Any) -> float:
    """The images module may return a number or a result object with the number in ``value``."""
    if isinstance(value, (int, float, np.floating)):
        return float(value)
    for attr in ("value", "mean", "ssim", "psnr"):
        if hasattr(value, attr):
            return float(getattr(value, attr))
    return float(value)
