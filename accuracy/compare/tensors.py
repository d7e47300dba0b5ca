"""Tensor metrics and the one comparison rule for arrays of numbers.

Pure functions, reference first (``expected, obtained``), float64 accumulation.
``compare_tensors`` bundles them into one ``TensorComparison`` that knows whether it passed:

- floats: values non-finite on both sides at the same places and equal (``inf == inf``, NaN where
  the reference has NaN) agree; the metrics are computed over the finite rest, so a metric is never
  NaN; a NaN or inf on one side only fails with its count and first index.
- integers, booleans (and text tensors a model may output): exact equality, with the count and
  fraction of mismatches and the first index.
- another shape: a failure showing both shapes (and both lengths for 1-D outputs), never an exception.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _pair(expected: np.ndarray, obtained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    expected = np.asarray(expected)
    obtained = np.asarray(obtained)
    if expected.shape != obtained.shape:
        raise ValueError(f"shapes differ: expected {expected.shape}, obtained {obtained.shape}")
    return expected.astype(np.float64, copy=False), obtained.astype(np.float64, copy=False)


def nonfinite_count(array: np.ndarray) -> int:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def cosine_similarity(expected: np.ndarray, obtained: np.ndarray) -> float:
    """cos = <a, b> / (|a| |b|) over the flattened arrays; 1.0 when both are all zero,
    0.0 when exactly one is, NaN when either holds a non-finite value."""
    a, b = _pair(expected, obtained)
    a, b = a.ravel(), b.ravel()
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 and norm_b == 0:
        return 1.0
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))


def max_abs_error(expected: np.ndarray, obtained: np.ndarray) -> float:
    a, b = _pair(expected, obtained)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def mean_abs_error(expected: np.ndarray, obtained: np.ndarray) -> float:
    a, b = _pair(expected, obtained)
    return float(np.mean(np.abs(a - b))) if a.size else 0.0


def root_mean_squared_error(expected: np.ndarray, obtained: np.ndarray) -> float:
    a, b = _pair(expected, obtained)
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else 0.0


def max_relative_error(expected: np.ndarray, obtained: np.ndarray, *, eps: float = 1e-7) -> float:
    """max |a - b| / max(|a|, eps): the worst element-wise relative error."""
    a, b = _pair(expected, obtained)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), eps))) if a.size else 0.0


def relative_l2_error(expected: np.ndarray, obtained: np.ndarray) -> float:
    """|a - b|_2 / |a|_2 (0 when both are zero, inf when only the reference is)."""
    a, b = _pair(expected, obtained)
    diff = np.linalg.norm((a - b).ravel())
    ref = np.linalg.norm(a.ravel())
    if ref == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / ref)


KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "bool", "U": "text", "S": "text", "O": "text"}


def tensor_kind(array: np.ndarray) -> str:
    """``float``, ``integer``, ``bool`` or ``text`` (numpy ``str``/``bytes``/``object``); ``ValueError`` else."""
    kind = KINDS.get(np.asarray(array).dtype.kind)
    if kind is None:
        raise ValueError(f"cannot compare {np.asarray(array).dtype} arrays (float, integer, bool or text)")
    return kind


@dataclass(frozen=True)
class TensorThresholds:
    """What a float tensor must meet. ``None`` disables a bound. The default cosine bound is the one
    Ascend's own compare tools use (0.99). ``exact`` asks for bit-equal values (NaN where NaN is).
    Integer, bool and text tensors are always compared exactly."""

    cosine_min: float | None = 0.99
    max_abs: float | None = None
    rel_l2_max: float | None = None
    max_rel: float | None = None
    exact: bool = False


@dataclass(frozen=True)
class TensorComparison:
    """Metrics (``None`` where they do not apply: cosine of integers, anything across shapes) and
    the verdict. ``mismatches`` counts differing elements of exact comparisons and one-sided
    non-finite values of float ones; ``first_index`` is the first of them."""

    cosine: float | None
    max_abs: float | None
    mean_abs: float | None
    rmse: float | None
    max_rel: float | None
    rel_l2: float | None
    nonfinite_expected: int
    nonfinite_obtained: int
    passed: bool
    failures: tuple[str, ...] = ()
    kind: str = "float"
    shape_expected: tuple[int, ...] = ()
    shape_obtained: tuple[int, ...] = ()
    mismatches: int = 0
    mismatch_fraction: float = 0.0
    first_index: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failures"] = list(self.failures)
        data["shape_expected"], data["shape_obtained"] = list(self.shape_expected), list(self.shape_obtained)
        data["first_index"] = None if self.first_index is None else list(self.first_index)
        return data


def compare_tensors(
    expected: np.ndarray, obtained: np.ndarray, *, thresholds: TensorThresholds = TensorThresholds()
) -> TensorComparison:
    """All metrics of ``obtained`` against ``expected`` and whether they meet ``thresholds``, by the
    rule of the reference's kind (module docstring). Never raises for arrays of a comparable kind.

    Floats are compared in one pass over one float64 copy (localize calls this once per tensor of a
    model); the all-finite case takes no masks.
    """
    expected, obtained = np.asarray(expected), np.asarray(obtained)
    kind = tensor_kind(expected)
    other = tensor_kind(obtained)
    shapes = {"shape_expected": tuple(expected.shape), "shape_obtained": tuple(obtained.shape)}
    numeric = {kind, other} <= {"float", "integer", "bool"}
    if expected.shape != obtained.shape or not (numeric or kind == other):
        return _shape_failure(expected, obtained, kind, other, shapes)
    if kind == "float":  # an integer or bool reference is matched exactly whatever the candidate's kind
        return _floats(expected, obtained, thresholds, shapes)
    return _exact(expected, obtained, kind, shapes)


def _shape_failure(expected, obtained, kind, other, shapes) -> TensorComparison:
    what = (f"shape {obtained.shape} differs from the reference's {expected.shape}" if kind == other
            else f"{other} {obtained.shape} where the reference is {kind} {expected.shape}")
    if expected.shape != obtained.shape and expected.ndim == obtained.ndim >= 1 \
            and expected.shape[1:] == obtained.shape[1:]:
        unit = "rows" if expected.ndim > 1 else "values"
        what += f" ({obtained.shape[0]} {unit}, the reference has {expected.shape[0]})"
    return TensorComparison(cosine=None, max_abs=None, mean_abs=None, rmse=None, max_rel=None, rel_l2=None,
                            nonfinite_expected=nonfinite_count(expected), nonfinite_obtained=nonfinite_count(obtained),
                            passed=False, failures=(what,), kind=kind, **shapes)


def _exact(expected, obtained, kind, shapes) -> TensorComparison:
    if kind == "text":
        differ = _as_text(expected) != _as_text(obtained)
    elif kind == "float":  # exact = true on floats: NaN where NaN is counts as equal
        differ = ~((expected == obtained) | (np.isnan(expected) & np.isnan(obtained)))
    else:
        differ = expected != obtained
    count = int(np.count_nonzero(differ))
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(differ)), differ.shape)) if count else None
    fraction = count / differ.size if differ.size else 0.0
    failures = ()
    if count:
        failures = (f"{count} of {differ.size} values differ ({fraction:.2%}), first at index {_index(first)}: "
                    + f"{_value(expected[first])} -> {_value(obtained[first])}",)
    metrics = dict.fromkeys(("cosine", "max_abs", "mean_abs", "rmse", "max_rel", "rel_l2"))
    if kind in ("integer", "float") and not count:
        metrics["max_abs"] = 0.0
    elif kind in ("integer", "float"):
        with np.errstate(invalid="ignore"):  # inf - inf where both sides agree on an inf
            diff = np.abs(expected.astype(np.float64) - obtained.astype(np.float64))
        finite = diff[np.isfinite(diff)]
        metrics["max_abs"] = float(finite.max()) if finite.size else 0.0
    return TensorComparison(**metrics, nonfinite_expected=nonfinite_count(expected),
                            nonfinite_obtained=nonfinite_count(obtained), passed=not count, failures=failures,
                            kind=kind, mismatches=count, mismatch_fraction=fraction, first_index=first, **shapes)


def _floats(expected, obtained, t: TensorThresholds, shapes) -> TensorComparison:
    if t.exact:
        return _exact(expected.astype(np.float64), obtained.astype(np.float64), "float", shapes)
    a = expected.astype(np.float64, copy=False).ravel()
    b = obtained.astype(np.float64, copy=False).ravel()
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    all_finite_a, all_finite_b = bool(finite_a.all()), bool(finite_b.all())
    nonfinite_a = 0 if all_finite_a else int(a.size - np.count_nonzero(finite_a))
    nonfinite_b = 0 if all_finite_b else int(b.size - np.count_nonzero(finite_b))
    one_sided, first = 0, None
    if nonfinite_a or nonfinite_b:
        both = finite_a & finite_b
        agree = ~(finite_a | finite_b) & ((a == b) | (np.isnan(a) & np.isnan(b)))
        lonely = ~(both | agree)
        one_sided = int(np.count_nonzero(lonely))
        if one_sided:
            first = tuple(int(i) for i in np.unravel_index(int(np.argmax(lonely)), expected.shape))
        a, b = a[both], b[both]
    if a.size:
        with np.errstate(over="ignore"):  # finite values 1e308 apart: the difference is inf, said as such
            diff = np.abs(a - b)
        abs_a = np.abs(a)
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
        cosine, rel_l2, rmse = _norm_metrics(a, b, diff, abs_a)
        np.maximum(abs_a, 1e-7, out=abs_a)
        np.divide(diff, abs_a, out=diff)
        max_rel = float(diff.max())
    else:
        max_abs = mean_abs = rmse = max_rel = rel_l2 = 0.0
        cosine = 1.0
    failures = []
    if one_sided:
        failures.append(f"{one_sided} non-finite values on one side only (reference {nonfinite_a}, candidate "
                        f"{nonfinite_b} non-finite), first at index {_index(first)}: "
                        f"{_value(expected[first])} -> {_value(obtained[first])}")
    if t.cosine_min is not None and not (cosine >= t.cosine_min):
        failures.append(f"cosine {cosine:.6g} < {t.cosine_min}")
    if t.max_abs is not None and not (max_abs <= t.max_abs):
        failures.append(f"max_abs {max_abs:.6g} > {t.max_abs}")
    if t.rel_l2_max is not None and not (rel_l2 <= t.rel_l2_max):
        failures.append(f"rel_l2 {rel_l2:.6g} > {t.rel_l2_max}")
    if t.max_rel is not None and not (max_rel <= t.max_rel):
        failures.append(f"max_rel {max_rel:.6g} > {t.max_rel}")
    return TensorComparison(
        cosine=cosine, max_abs=max_abs, mean_abs=mean_abs, rmse=rmse, max_rel=max_rel, rel_l2=rel_l2,
        nonfinite_expected=nonfinite_a, nonfinite_obtained=nonfinite_b, passed=not failures,
        failures=tuple(failures), kind="float", mismatches=one_sided,
        mismatch_fraction=one_sided / expected.size if expected.size else 0.0, first_index=first, **shapes)


def _norm_metrics(a, b, diff, abs_a) -> tuple[float, float, float]:
    """Cosine, relative L2 and RMSE of finite ``a``/``b``. Sums of squares are taken as they are when
    they neither overflow nor underflow (the common case, no extra pass); else over the values divided
    by their largest magnitude, so 1e200 or 1e-310 values give true metrics, never NaN or a false 1.0."""
    dot_aa, dot_bb, dot_ab, sq = np.dot(a, a), np.dot(b, b), np.dot(a, b), float(np.dot(diff, diff))
    tiny = np.finfo(np.float64).tiny
    if not (np.isfinite(dot_aa) and np.isfinite(dot_bb) and np.isfinite(sq)
            and (dot_aa > tiny or not abs_a.any()) and (dot_bb > tiny or not b.any())):
        scale = max(float(abs_a.max()), float(np.abs(b).max()))
        if scale > 0 and np.isfinite(scale):
            a, b = a / scale, b / scale
            dot_aa, dot_bb, dot_ab = np.dot(a, a), np.dot(b, b), np.dot(a, b)
            d = a - b  # both within [-1, 1] now: no overflow
            sq_scaled = float(np.dot(d, d))
            rel_l2 = 0.0 if sq_scaled == 0 else (float(np.sqrt(sq_scaled / dot_aa)) if dot_aa else float("inf"))
            rmse = float(scale * np.sqrt(sq_scaled / a.size))
            return _cosine(dot_aa, dot_bb, dot_ab), rel_l2, rmse
    rel_l2 = (0.0 if sq == 0 else float("inf")) if dot_aa == 0 else float(np.sqrt(sq / dot_aa))
    return _cosine(dot_aa, dot_bb, dot_ab), rel_l2, float(np.sqrt(sq / a.size))


def _cosine(dot_aa, dot_bb, dot_ab) -> float:
    if dot_aa == 0 and dot_bb == 0:
        return 1.0
    if dot_aa == 0 or dot_bb == 0:
        return 0.0
    return float(np.clip(dot_ab / (np.sqrt(dot_aa) * np.sqrt(dot_bb)), -1.0, 1.0))


def _as_text(array: np.ndarray) -> np.ndarray:
    """Text values as comparable objects: bytes decoded, ``str`` as is, anything else in an object
    array (``None``, a number) as its type and repr -- so ``None`` never equals the string ``"None"``."""
    if array.dtype.kind != "O":
        return np.char.decode(array, "utf-8", errors="replace") if array.dtype.kind == "S" else array
    def one(item):
        if isinstance(item, bytes):
            return item.decode("utf-8", errors="replace")
        return item if isinstance(item, str) else (type(item).__name__, repr(item))
    out = np.empty(array.shape, dtype=object)
    out.ravel()[:] = [one(item) for item in array.ravel().tolist()] if array.size else []
    return out


def _index(index: tuple[int, ...] | None) -> str:
    return "()" if not index else "(" + ", ".join(map(str, index)) + ")"


def _value(value) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:39] + "…"
