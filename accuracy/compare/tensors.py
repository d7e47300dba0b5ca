"""Tensor metrics: cosine similarity, errors, relative L2, non-finite counts.

Pure functions, reference first (``expected, obtained``), float64 accumulation.
``compare_tensors`` bundles them into one ``TensorComparison`` that knows whether it passed.
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


@dataclass(frozen=True)
class TensorThresholds:
    """What a tensor must meet. ``None`` disables a bound. The default cosine bound is the one
    Ascend's own compare tools use (0.99)."""

    cosine_min: float | None = 0.99
    max_abs: float | None = None
    rel_l2_max: float | None = None
    max_rel: float | None = None


@dataclass(frozen=True)
class TensorComparison:
    cosine: float
    max_abs: float
    mean_abs: float
    rmse: float
    max_rel: float
    rel_l2: float
    nonfinite_expected: int
    nonfinite_obtained: int
    passed: bool
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data


def compare_tensors(
    expected: np.ndarray, obtained: np.ndarray, *, thresholds: TensorThresholds = TensorThresholds()
) -> TensorComparison:
    """All tensor metrics of ``obtained`` against ``expected`` and whether they meet ``thresholds``.

    The same definitions as the single-metric functions above, computed in one pass over one
    float64 copy (localize calls this once per tensor of a model). Non-finite values are left out
    of the error metrics; non-finite values in the obtained tensor that the expected one does not
    have always fail, and make the cosine NaN.
    """
    a, b = _pair(expected, obtained)
    a, b = a.ravel(), b.ravel()
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    nonfinite_a = int(a.size - np.count_nonzero(finite_a))
    nonfinite_b = int(b.size - np.count_nonzero(finite_b))
    if nonfinite_a or nonfinite_b:
        finite = finite_a & finite_b
        a, b = np.where(finite, a, 0.0), np.where(finite, b, 0.0)
    if a.size:
        diff = np.abs(a - b)
        abs_a = np.abs(a)
        norm_a, norm_b = np.sqrt(np.dot(a, a)), np.sqrt(np.dot(b, b))
        sq = float(np.dot(diff, diff))
        max_abs, mean_abs = float(diff.max()), float(diff.mean())
        rmse = float(np.sqrt(sq / a.size))
        np.maximum(abs_a, 1e-7, out=abs_a)
        np.divide(diff, abs_a, out=diff)
        max_rel = float(diff.max())
        rel_l2 = (0.0 if sq == 0 else float("inf")) if norm_a == 0 else float(np.sqrt(sq) / norm_a)
    else:
        norm_a = norm_b = 0.0
        max_abs = mean_abs = rmse = max_rel = rel_l2 = 0.0
    if nonfinite_a or nonfinite_b:
        cosine = float("nan")
    elif norm_a == 0 and norm_b == 0:
        cosine = 1.0
    elif norm_a == 0 or norm_b == 0:
        cosine = 0.0
    else:
        cosine = float(np.clip(np.dot(a, b) / (norm_a * norm_b), -1.0, 1.0))
    metrics = {"cosine": cosine, "max_abs": max_abs, "mean_abs": mean_abs, "rmse": rmse, "max_rel": max_rel, "rel_l2": rel_l2}
    failures = []
    if nonfinite_b > nonfinite_a:
        failures.append(f"{nonfinite_b} non-finite values (expected {nonfinite_a})")
    t = thresholds
    if t.cosine_min is not None and not (cosine >= t.cosine_min):
        failures.append(f"cosine {cosine:.6g} < {t.cosine_min}")
    if t.max_abs is not None and not (max_abs <= t.max_abs):
        failures.append(f"max_abs {max_abs:.6g} > {t.max_abs}")
    if t.rel_l2_max is not None and not (rel_l2 <= t.rel_l2_max):
        failures.append(f"rel_l2 {rel_l2:.6g} > {t.rel_l2_max}")
    if t.max_rel is not None and not (max_rel <= t.max_rel):
        failures.append(f"max_rel {max_rel:.6g} > {t.max_rel}")
    return TensorComparison(
        **metrics,
        nonfinite_expected=nonfinite_a,
        nonfinite_obtained=nonfinite_b,
        passed=not failures,
        failures=tuple(failures),
    )
