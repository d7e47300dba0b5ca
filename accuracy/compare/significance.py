"""Is a score change noise? Standard errors and the paired exact (McNemar) test on flipped samples.

Pure functions over per-sample correctness flags (sample id -> correct). Pairing comes first: the
two sides must be matched sample by sample, and no pairs is no evidence, never "not significant".
"""

from __future__ import annotations

import math
import re
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
    Only meaningful over at least one paired sample (see ``pair_samples``).
    """
    n = to_wrong + to_right
    if n == 0:
        return 1.0
    k = min(to_wrong, to_right)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Pairing:
    """Which baseline sample goes with which candidate sample, and how that was decided.

    ``by`` is ``"id"`` (same sample ids), ``"number"`` (ids differ but end in the same numbers,
    e.g. ``gsm8k_test_7`` and ``7``), ``"position"`` (same count, paired in file order) or ``None``
    when nothing could be paired; ``note`` says why in words.
    """

    pairs: tuple[tuple[str, str], ...]
    by: str | None
    note: str | None = None


_TRAILING_NUMBER = re.compile(r"(\d+)$")


def _by_number(flags: Mapping[str, bool]) -> dict[int, str] | None:
    numbered: dict[int, str] = {}
    for key in flags:
        match = _TRAILING_NUMBER.search(str(key))
        if match is None or int(match.group(1)) in numbered:
            return None
        numbered[int(match.group(1))] = key
    return numbered


def pair_samples(baseline: Mapping[str, bool], candidate: Mapping[str, bool]) -> Pairing:
    """Pair the two sides' samples: by id; else, when both hold the same number of samples, by the
    number their ids end in (the same numbers on both sides, else they are different samples and
    nothing pairs), else by position (both in the order they were written)."""
    common = [key for key in baseline if key in candidate]
    if common:
        note = None
        if len(common) < max(len(baseline), len(candidate)):
            note = f"{len(common)} sample ids in common (baseline {len(baseline)}, candidate {len(candidate)})"
        return Pairing(pairs=tuple((k, k) for k in common), by="id", note=note)
    if not baseline or not candidate:
        return Pairing(pairs=(), by=None, note="no per-sample results on one side")
    first = f"{next(iter(baseline))!r} vs {next(iter(candidate))!r}"
    if len(baseline) != len(candidate):
        return Pairing(
            pairs=(),
            by=None,
            note=f"no sample ids in common ({first}) and different sample counts "
            f"({len(baseline)} vs {len(candidate)}): nothing can be paired",
        )
    base_numbers, cand_numbers = _by_number(baseline), _by_number(candidate)
    if base_numbers is not None and cand_numbers is not None:
        if set(base_numbers) != set(cand_numbers):  # 0..39 against 40..79: other questions, not renamed ones
            return Pairing(pairs=(), by=None, note=f"no sample ids in common ({first}) and their numbers differ: "
                           "different samples, nothing can be paired")
        pairs = tuple((base_numbers[n], cand_numbers[n]) for n in sorted(base_numbers))
        return Pairing(pairs=pairs, by="number", note=f"sample ids differ ({first}): paired by the number they end in")
    pairs = tuple(zip(baseline, candidate))
    return Pairing(pairs=pairs, by="position", note=f"sample ids differ ({first}): paired by position, {len(pairs)} each")


@dataclass(frozen=True)
class PairedFlips:
    """Samples scored on both sides: which flipped, and how surprising that is."""

    common: int
    to_wrong: tuple[str, ...] = field(default_factory=tuple)  # right on the baseline, wrong on the candidate
    to_right: tuple[str, ...] = field(default_factory=tuple)
    p_value: float = 1.0
    paired_by: str = "id"

    def to_dict(self) -> dict:
        return {
            "common": self.common,
            "paired_by": self.paired_by,
            "to_wrong": list(self.to_wrong),
            "to_right": list(self.to_right),
            "count": len(self.to_wrong) + len(self.to_right),
            "p_value": self.p_value,
        }


def paired_flips(
    baseline: Mapping[str, bool], candidate: Mapping[str, bool], pairing: Pairing | None = None
) -> PairedFlips | None:
    """Flips over the paired samples (``pair_samples`` unless given), or None when none pair.

    A flip is named by its baseline sample id.
    """
    pairing = pairing or pair_samples(baseline, candidate)
    if not pairing.pairs:
        return None
    to_wrong = tuple(b for b, c in pairing.pairs if baseline[b] and not candidate[c])
    to_right = tuple(b for b, c in pairing.pairs if not baseline[b] and candidate[c])
    return PairedFlips(
        common=len(pairing.pairs),
        to_wrong=to_wrong,
        to_right=to_right,
        p_value=mcnemar_exact_p(len(to_wrong), len(to_right)),
        paired_by=pairing.by or "id",
    )


def score_scale(value: float | None, flags: Mapping[str, bool]) -> float:
    """100 when the score is a percentage of the flags' accuracy, else 1."""
    if value is None or not flags:
        return 100.0
    p = sum(flags.values()) / len(flags)
    return 100.0 if abs(value - 100 * p) <= abs(value - p) else 1.0


def flags_reproduce(value: float | None, flags: Mapping[str, bool]) -> bool:
    """Whether ``value`` is the accuracy of ``flags`` (as a percentage or a fraction, to the two
    decimals OpenCompass prints): exact-match flags belong to that metric and to no other."""
    if value is None or not flags:
        return False
    p = sum(bool(v) for v in flags.values()) / len(flags)
    return abs(value - 100 * p) <= 0.005 + 1e-9 or abs(value - p) <= 0.00005 + 1e-12
