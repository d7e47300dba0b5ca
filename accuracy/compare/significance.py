"""Is a score change noise? Standard errors and the paired exact (McNemar) test on flipped samples.

Pure functions over per-sample correctness flags (sample id -> correct).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


def standard_error(flags: Mapping[str, bool], *, scale: float = 100.0) -> float:
    """Binomial standard error of an accuracy, sqrt(p (1 - p) / n), in the score's units."""
    n = len(flags)
    if n == 0:
        return float("nan")
    p = sum(flags.values()) / n
    return scale * math.sqrt(p * (1 - p) / n)


def mcnemar_exact_p(to_wrong: int, to_right: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2.

    McNemar, Q. (1947), Psychometrika 12(2); the exact form is the sign test on discordant pairs.
    """
    n = to_wrong + to_right
    if n == 0:
        return 1.0
    k = min(to_wrong, to_right)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedFlips:
    """Samples scored on both sides: which flipped, and how surprising that is."""

    common: int
    to_wrong: tuple[str, ...] = field(default_factory=tuple)  # right on the baseline, wrong on the candidate
    to_right: tuple[str, ...] = field(default_factory=tuple)
    p_value: float = 1.0

    def to_dict(self) -> dict:
        return {
            "common": self.common,
            "to_wrong": list(self.to_wrong),
            "to_right": list(self.to_right),
            "count": len(self.to_wrong) + len(self.to_right),
            "p_value": self.p_value,
        }


def paired_flips(baseline: Mapping[str, bool], candidate: Mapping[str, bool]) -> PairedFlips:
    common = [key for key in baseline if key in candidate]
    to_wrong = tuple(k for k in common if baseline[k] and not candidate[k])
    to_right = tuple(k for k in common if not baseline[k] and candidate[k])
    return PairedFlips(
        common=len(common), to_wrong=to_wrong, to_right=to_right, p_value=mcnemar_exact_p(len(to_wrong), len(to_right))
    )


def score_scale(value: float | None, flags: Mapping[str, bool]) -> float:
    """100 when the score is a percentage of the flags' accuracy, else 1."""
    if value is None or not flags:
        return 100.0
    p = sum(flags.values()) / len(flags)
    return 100.0 if abs(value - 100 * p) <= abs(value - p) else 1.0
