"""The per-tensor comparison localize makes for every tensor of a model, fast.

The rule is ``accuracy.compare.tensors.compare_tensors``'s (floats: non-finite values that agree
are equal, one-sided ones fail, metrics over the finite rest; other kinds exactly); this module only
takes a shortcut for the common case, a float32 tensor finite on both sides: four BLAS dot products
and one difference in float32 with float64 results, no float64 copies and no masks. ``max_rel``
(two more passes) is computed when a bound asks for it or the tensor fails. Anything else goes
to ``compare_tensors`` itself.

fp16's limit: where the reference holds a finite value past 65504 and the candidate holds +-65504 of
the same sign, the candidate stored what fp16 can (converters saturate constants, e.g. an attention
mask's float32 minimum, and it changes nothing downstream). Those elements count as agreeing, like
infinities that match, and are counted (``saturated``) instead of failing the relative bounds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from accuracy.backends.onnxrt_fp16.emulate import FP16_MAX
from accuracy.compare.tensors import TensorComparison, TensorThresholds, compare_tensors

_FP16_MAX_SQUARED = FP16_MAX * FP16_MAX
_TINY_SUM = 1e-30  # a float32 sum of squares this small may hold underflowed (zeroed) terms


def compare_tensor(expected: np.ndarray, obtained: np.ndarray, thresholds: TensorThresholds) -> TensorComparison:
    """``compare_tensors(expected, obtained, thresholds=thresholds)``, faster for finite float32 pairs
    (and fp16 saturation agreeing, see the module docstring): use ``compare_saturating`` for the count."""
    return compare_saturating(expected, obtained, thresholds)[0]


def compare_saturating(expected: np.ndarray, obtained: np.ndarray,
                       thresholds: TensorThresholds) -> tuple[TensorComparison, int]:
    """(the comparison, how many elements agreed by fp16 saturation)."""
    a, b = np.asarray(expected), np.asarray(obtained)
    if (a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape or not a.size
            or getattr(thresholds, "exact", False)):
        return compare_tensors(a, b, thresholds=thresholds), 0
    a, b = a.ravel(), b.ravel()
    aa, bb = float(np.dot(a, a)), float(np.dot(b, b))
    saturated = 0
    if not aa <= _FP16_MAX_SQUARED:  # some |value| may pass fp16's limit (or be non-finite)
        with np.errstate(invalid="ignore"):
            held = (np.abs(a) > FP16_MAX) & np.isfinite(a) & (np.abs(b) == FP16_MAX) & (np.sign(a) == np.sign(b))
        saturated = int(np.count_nonzero(held))
        if saturated:
            a = np.where(held, b, a)
            expected = a.reshape(np.shape(expected))
            aa = float(np.dot(a, a))
    if not (math.isfinite(aa) and math.isfinite(bb)):  # a non-finite value (or a float32 overflow of the sum)
        return compare_tensors(expected, obtained, thresholds=thresholds), saturated
    if (aa < _TINY_SUM and a.any()) or (bb < _TINY_SUM and b.any()):  # float32 squares of values below ~1e-19
        return compare_tensors(expected, obtained, thresholds=thresholds), saturated  # underflow: 1e-23 vs 0 gave cosine 1
    ab = float(np.dot(a, b))
    diff = np.subtract(b, a)
    sq = float(np.dot(diff, diff))
    np.abs(diff, out=diff)
    max_abs, mean_abs = float(diff.max()), float(diff.sum(dtype=np.float64)) / a.size
    norm_a, norm_b = math.sqrt(aa), math.sqrt(bb)
    rel_l2 = (0.0 if sq == 0 else math.inf) if norm_a == 0 else math.sqrt(sq) / norm_a
    if norm_a == 0 and norm_b == 0:
        cosine = 1.0
    elif norm_a == 0 or norm_b == 0:
        cosine = 0.0
    else:
        cosine = min(1.0, max(-1.0, ab / (norm_a * norm_b)))
    t = thresholds
    failures = []
    if t.cosine_min is not None and not (cosine >= t.cosine_min):
        failures.append(f"cosine {cosine:.6g} < {t.cosine_min}")
    if t.max_abs is not None and not (max_abs <= t.max_abs):
        failures.append(f"max_abs {max_abs:.6g} > {t.max_abs}")
    if t.rel_l2_max is not None and not (rel_l2 <= t.rel_l2_max):
        failures.append(f"rel_l2 {rel_l2:.6g} > {t.rel_l2_max}")
    max_rel = None
    if t.max_rel is not None or failures:
        np.divide(diff, np.maximum(np.abs(a), np.float32(1e-7)), out=diff)
        max_rel = float(diff.max())
        if t.max_rel is not None and not (max_rel <= t.max_rel):
            failures.append(f"max_rel {max_rel:.6g} > {t.max_rel}")
    shape = tuple(np.shape(expected))
    extra = {"kind": "float", "shape_expected": shape, "shape_obtained": shape}
    return TensorComparison(cosine=cosine, max_abs=max_abs, mean_abs=mean_abs, rmse=math.sqrt(sq / a.size),
                            max_rel=max_rel, rel_l2=rel_l2, nonfinite_expected=0, nonfinite_obtained=0,
                            passed=not failures, failures=tuple(failures),
                            **{k: v for k, v in extra.items() if k in _FIELDS}), saturated


_FIELDS = {f.name for f in dataclasses.fields(TensorComparison)}
