"""Text outputs (an OCR pipeline's recognised lines, a caption): exact match, character and word error rates.

Edit distances come from ``rapidfuzz`` (C++ Levenshtein over characters, and over lists of words).
Rates follow the speech/OCR convention: edits divided by the reference's length, summed over lines
(``CER = sum(edits) / sum(len(reference line))``), so a long line weighs more than a short one. An empty
reference counts as length 1 (an empty expected line that came back as ``"abc"`` has CER 3).
Pure: sequences of strings in, a ``TextComparison`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rapidfuzz.distance import Levenshtein


def character_error_rate(expected: Sequence[str], obtained: Sequence[str]) -> float:
    """Character edits (insertions, deletions, substitutions) per reference character, over paired lines."""
    edits = sum(Levenshtein.distance(a, b) for a, b in zip(expected, obtained))
    return edits / max(sum(len(a) for a in expected), 1)


def word_error_rate(expected: Sequence[str], obtained: Sequence[str]) -> float:
    """Word edits per reference word (words split on whitespace), over paired lines."""
    pairs = [(a.split(), b.split()) for a, b in zip(expected, obtained)]
    edits = sum(Levenshtein.distance(a, b) for a, b in pairs)
    return edits / max(sum(len(a) for a, _ in pairs), 1)


@dataclass(frozen=True)
class TextComparison:
    """Metrics of text ``obtained`` against ``expected`` and whether they meet the bounds.

    ``mismatches`` counts lines that differ and ``first_index`` is the first of them. When the line
    counts differ, the rates are computed over the lines joined by newlines (nothing is cut off) and
    the comparison fails all the same.
    """

    cer: float
    wer: float
    exact: bool
    lines_expected: int
    lines_obtained: int
    mismatches: int
    first_index: int | None
    passed: bool
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data


def compare_text(expected: Sequence[str], obtained: Sequence[str], *, cer_max: float | None = None,
                 wer_max: float | None = None) -> TextComparison:
    """Compare two sequences of lines. With neither bound the lines must match exactly; with
    ``cer_max`` / ``wer_max`` the rates must stay within them (an exact match always passes)."""
    expected, obtained = [str(s) for s in expected], [str(s) for s in obtained]
    same_count = len(expected) == len(obtained)
    if same_count:
        cer, wer = character_error_rate(expected, obtained), word_error_rate(expected, obtained)
    else:
        joined_a, joined_b = ["\n".join(expected)], ["\n".join(obtained)]
        cer, wer = character_error_rate(joined_a, joined_b), word_error_rate(joined_a, joined_b)
    differing = [i for i, (a, b) in enumerate(zip(expected, obtained)) if a != b]
    mismatches = len(differing) + abs(len(expected) - len(obtained))
    first = differing[0] if differing else (min(len(expected), len(obtained)) if mismatches else None)
    failures: list[str] = []
    if not same_count:
        failures.append(f"{len(obtained)} lines, the reference has {len(expected)} (cer {cer:.4g} over the joined text)")
    if cer_max is None and wer_max is None:
        if same_count and mismatches:
            failures.append(f"text differs in {mismatches} of {len(expected)} lines (first at line {first}: "
                            f"{_clip(expected[first])!r} -> {_clip(obtained[first])!r}); cer {cer:.4g}, wer {wer:.4g}")
    else:
        if cer_max is not None and not (cer <= cer_max):
            failures.append(f"cer {cer:.4g} > {cer_max}")
        if wer_max is not None and not (wer <= wer_max):
            failures.append(f"wer {wer:.4g} > {wer_max}")
    return TextComparison(cer=float(cer), wer=float(wer), exact=mismatches == 0, lines_expected=len(expected),
                          lines_obtained=len(obtained), mismatches=mismatches, first_index=first,
                          passed=not failures, failures=tuple(failures))


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
