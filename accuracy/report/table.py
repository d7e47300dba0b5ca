"""Plain-text tables for the terminal and for pytest failure messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _diff(check) -> str:
    if check.candidate is None or check.baseline is None:
        return "-"
    if check.rel_diff is None:
        return f"{check.abs_diff:+.2f}"
    return f"{check.abs_diff:+.2f} ({check.rel_diff * 100:+.2f}%)"


VERDICT_WORDS = {"pass": "aligned", "fail": "NOT ALIGNED", "missing": "MISSING", "invalid": "INVALID", "skipped": "skipped"}


def score_table(checks: Sequence[Any]) -> str:
    """The gate's table: dataset, metric, baseline, candidate, diff, tolerance, verdict (+ notes)."""
    rows = [
        (
            c.dataset,
            c.metric,
            _number(c.baseline),
            _number(c.candidate),
            _diff(c),
            c.tolerance.describe(),
            VERDICT_WORDS.get(c.status, c.status),
        )
        for c in checks
    ]
    text = render_table(("dataset", "metric", "baseline", "candidate", "diff", "tolerance", "verdict"), rows)
    notes = [f"  {c.dataset}/{c.metric}: {note}" for c in checks for note in c.notes]
    if notes:
        text += "\n" + "\n".join(notes)
    return text


def bisect_cell(run: Any, *, width: int = 64) -> str:
    """One bisect run (``isolated`` / ``swap_in`` / ``leave_out`` / ``all_candidate``) in a few words:
    a pass shows its headline metrics, a failure its worst output by name and why -- a failing run
    never shows a passing metric as its headline."""
    if not run:
        return "-"
    if run.get("verdict") == "skipped":
        return "skipped"
    worst = run.get("worst") if isinstance(run.get("worst"), dict) else None
    verdict = run.get("verdict", "?")
    if verdict != "pass" and worst:
        text = f"{verdict} {worst['output']}: {worst['text']}"
        return text if len(text) <= width else text[: width - 1] + "…"
    metrics = run.get("metrics") if isinstance(run.get("metrics"), dict) else run
    shown = [f"{key} {format_metric(metrics[key])}" for key in ("psnr", "ssim", "cosine", "cer")
             if isinstance(metrics.get(key), (int, float))][:2]
    if not shown and worst:
        shown = [worst["text"]]
    if verdict != "pass" and run.get("failures"):
        shown = [str(run["failures"][0])]
    named = f" (worst: {worst['output']})" if worst and len(run.get("outputs") or ()) > 1 else ""
    return f"{verdict} " + ", ".join(shown) + named


def format_metric(value: Any) -> str:
    if isinstance(value, float):
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.3g}"
    return str(value)
