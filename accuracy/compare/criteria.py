"""Judge a pipeline's outputs against a suite's ``[compare]`` criteria: the one place that decides.

Every output is judged by the rule of its kind (``accuracy.compare.tensors`` for float, integer and
bool arrays, ``accuracy.compare.text`` for text), under its own criteria when the suite has a
``[compare.outputs.NAME]`` table and the suite's ``[compare]`` otherwise. Image bounds (``ssim_min``,
``psnr_min``) apply to float outputs shaped like images (``(H, W, C)`` or a batch ``(N, H, W, C)``
with C in 1..4). ``bisect``, ``gate``, golden checks and the pytest plugin all ask ``judge_outputs``.
Pure: arrays in, a ``Judgement`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accuracy.compare.tensors import TensorThresholds, compare_tensors, tensor_kind
from accuracy.compare.text import compare_text

FLOAT_KEYS = ("cosine_min", "max_abs", "rel_l2_max", "max_rel", "ssim_min", "psnr_min", "data_range", "exact")
TEXT_KEYS = ("cer_max", "wer_max", "exact")
IMAGE_KEYS = ("ssim_min", "psnr_min", "data_range")
APPLICABLE = {"float": FLOAT_KEYS, "integer": ("exact", *IMAGE_KEYS), "bool": ("exact",), "text": TEXT_KEYS}
HEADLINE = {"float": ("cosine", "max_abs"), "integer": ("mismatches",), "bool": ("mismatches",),
            "text": ("cer", "wer")}


@dataclass(frozen=True)
class Criteria:
    """The bounds of ``[compare]``; ``None`` disables one. ``outputs`` limits the judged outputs.

    ``per_output`` maps an output name to its own ``Criteria`` (``[compare.outputs.NAME]``), which
    replaces these bounds for that output. ``named`` lists the keys the suite wrote (so a bound that
    cannot apply to an output's kind is reported, not silently ignored). Integer and bool outputs
    are always compared exactly; text exactly unless ``cer_max`` / ``wer_max`` is given.
    """

    cosine_min: float | None = 0.99
    max_abs: float | None = None
    rel_l2_max: float | None = None
    max_rel: float | None = None
    ssim_min: float | None = None
    psnr_min: float | None = None
    data_range: float | None = None
    cer_max: float | None = None
    wer_max: float | None = None
    exact: bool = False
    outputs: tuple[str, ...] = ()
    per_output: Mapping[str, Criteria] = field(default_factory=dict)
    named: tuple[str, ...] = ()

    @property
    def tensor_thresholds(self) -> TensorThresholds:
        return TensorThresholds(cosine_min=self.cosine_min, max_abs=self.max_abs, rel_l2_max=self.rel_l2_max,
                                max_rel=self.max_rel, exact=self.exact)

    def for_output(self, name: str) -> Criteria:
        """The criteria that judge output ``name``: its own table, else these."""
        return self.per_output.get(name, self)


def criteria_problems(criteria: Criteria, outputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for each ``[compare.outputs.NAME]`` that cannot apply to ``outputs`` (the
    reference run's): a name the pipeline does not return, or a bound for another kind of output
    (``cer_max`` on a float tensor). The caller turns them into config errors at the suite's key."""
    problems = []
    for name, own in criteria.per_output.items():
        if name not in outputs:
            message = f"the pipeline has no output {name!r} (it returns {', '.join(outputs)})"
            problems.append((f"outputs.{name}", message))
            continue
        array = np.asarray(outputs[name])
        kind = tensor_kind(array)
        applicable = ("exact",) if kind == "integer" and array.dtype.itemsize > 2 else APPLICABLE[kind]
        for key in own.named:
            if key not in applicable:
                allowed = ", ".join(applicable)
                message = f"{key} does not apply to {name!r}, a {kind} output (its keys: {allowed})"
                problems.append((f"outputs.{name}.{key}", message))
    return problems


@dataclass(frozen=True)
class Judgement:
    """Per-output metrics and whether every judged output met its criteria."""

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
        values = [o[metric] for o in self.outputs.values() if isinstance(o.get(metric), (int, float))
                  and not isinstance(o.get(metric), bool)]
        if not values:
            return None
        return min(values) if metric in ("cosine", "ssim", "psnr") else max(values)

    def worst_output(self) -> dict[str, Any] | None:
        """The output a person should look at first, by name: the first failing one (an output that
        could not be compared at all counts), else the passing one with the lowest cosine (the first
        output when none has one). ``{"output", "passed", "kind", "text"}``; ``text`` is the first
        failure, or the headline metrics of a pass -- a failing run never gets a passing headline."""
        for failure in self.failures:
            name, _, text = failure.partition(": ")
            record = self.outputs.get(name, {})
            return {"output": name, "passed": False, "kind": record.get("kind"), "text": text}
        if not self.outputs:
            return None
        cosines = {n: r["cosine"] for n, r in self.outputs.items() if isinstance(r.get("cosine"), float)}
        name = min(cosines, key=cosines.get) if cosines else next(iter(self.outputs))
        record = self.outputs[name]
        return {"output": name, "passed": True, "kind": record.get("kind"), "text": headline(record)}

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "passed": self.passed, "failures": list(self.failures),
                "worst": self.worst_output(), "outputs": self.outputs}


def headline(record: Mapping[str, Any]) -> str:
    """The metrics that sum up one output's comparison (``cosine 0.9999, max_abs 0.002``; ``cer 0``)."""
    if record.get("kind") in ("integer", "bool") and record.get("passed"):
        return "exact"
    if record.get("kind") == "text" and record.get("exact"):
        return "exact"
    keys = ("ssim", "psnr") if "ssim" in record else HEADLINE.get(record.get("kind"), ("cosine",))
    return ", ".join(f"{key} {_short(record[key])}" for key in keys if record.get(key) is not None)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def is_image_like(array: np.ndarray) -> bool:
    return array.ndim in (3, 4) and 1 <= array.shape[-1] <= 4 and array.shape[-2] >= 7 and array.shape[-3] >= 7


def judge_outputs(expected: Mapping[str, Any], obtained: Mapping[str, Any], *,
                  criteria: Criteria = Criteria()) -> Judgement:
    """Compare every expected output (or ``criteria.outputs``) with the obtained one, each by the
    rule of its kind under ``criteria.for_output(name)``.

    Values are arrays or anything ``accuracy.compare.outputs.as_output`` accepts (numbers, strings,
    lists). An output missing from ``obtained`` fails with a message saying so; another shape fails
    showing both shapes.
    """
    from accuracy.compare.outputs import as_output

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
        record = compare_output(as_output(expected[name]), as_output(obtained[name]), criteria=criteria.for_output(name))
        results[name] = record
        failures += [f"{name}: {text}" for text in record["failures"]]
    return Judgement(passed=not failures, outputs=results, failures=tuple(failures))


def compare_output(expected: np.ndarray, obtained: np.ndarray, *, criteria: Criteria = Criteria()) -> dict[str, Any]:
    """One output judged by the rule of its kind: a JSON-ready record with ``kind``, the metrics,
    ``passed`` and ``failures``."""
    if tensor_kind(expected) == "text" and tensor_kind(obtained) == "text":
        lines_a, lines_b = expected.astype(str).ravel().tolist(), obtained.astype(str).ravel().tolist()
        exact_only = criteria.exact or (criteria.cer_max is None and criteria.wer_max is None)
        text = compare_text(lines_a, lines_b, cer_max=None if exact_only else criteria.cer_max,
                            wer_max=None if exact_only else criteria.wer_max)
        record = {"kind": "text", **text.to_dict(), "shape_expected": list(expected.shape),
                  "shape_obtained": list(obtained.shape)}
        if expected.shape != obtained.shape and len(lines_a) == len(lines_b):
            record["failures"] = [f"shape {obtained.shape} differs from the reference's {expected.shape}",
                                  *record["failures"]]
            record["passed"] = False
        return record
    image = (criteria.ssim_min is not None or criteria.psnr_min is not None) and not criteria.exact \
        and is_image_like(expected) and expected.shape == obtained.shape
    thresholds = criteria.tensor_thresholds
    if image and tensor_kind(expected) == "integer" and expected.dtype.itemsize <= 2:
        # 8/16-bit pictures: judged as images, not exactly (int32/int64 outputs -- class maps, counts,
        # indices -- stay exact: SSIM over a 9e18 dtype range passed any change)
        data_range = criteria.data_range or float(np.iinfo(expected.dtype).max)
        criteria = Criteria(ssim_min=criteria.ssim_min, psnr_min=criteria.psnr_min, data_range=data_range,
                            cosine_min=None)
        expected, obtained = expected.astype(np.float64), obtained.astype(np.float64)
        thresholds = TensorThresholds(cosine_min=None)
    comparison = compare_tensors(expected, obtained, thresholds=thresholds)
    record = comparison.to_dict()
    output_failures = list(comparison.failures)
    if image and comparison.kind == "float":
        output_failures += _judge_image(expected, obtained, criteria, record)
    record["passed"] = not output_failures
    record["failures"] = output_failures
    return record


def _judge_image(ref: np.ndarray, got: np.ndarray, criteria: Criteria, record: dict[str, Any]) -> list[str]:
    """SSIM/PSNR over the finite values: agreeing non-finite values (and one-sided ones, which have
    failed already) count as zeros on both sides, so neither metric is ever NaN."""
    ssim_fn, psnr_fn = _image_metrics()
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    finite = np.isfinite(ref) & np.isfinite(got)
    if not finite.all():
        ref, got = np.where(finite, ref, 0.0), np.where(finite, got, 0.0)
    low, high = (float(ref.min()), float(ref.max())) if ref.size else (0.0, 1.0)
    data_range = criteria.data_range or (1.0 if low >= 0 and high <= 1 else (high - low) or 1.0)
    batch = ref.reshape((-1,) + ref.shape[-3:]) if ref.ndim == 4 else ref[None]
    batch_got = got.reshape(batch.shape)
    failures: list[str] = []
    ssims = [float(ssim_fn(a, b, data_range=data_range)) for a, b in zip(batch, batch_got)]
    psnrs = [float(psnr_fn(a, b, data_range=data_range)) for a, b in zip(batch, batch_got)]
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
