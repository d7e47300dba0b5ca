"""The ``scores`` section: each dataset's score on baseline and candidate, deltas, tolerance and
flipped-sample counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accuracy.report.html.common import escape, format_number, verdict_badge


def _flipped_text(flipped: Any) -> str:
    if not isinstance(flipped, Mapping):
        return escape(format_number(flipped)) if flipped is not None else "—"
    count = flipped.get("count", len(flipped.get("to_wrong", [])) + len(flipped.get("to_right", [])))
    text = (f"{count} of {flipped.get('common', '?')} (right→wrong {len(flipped.get('to_wrong', []))}, "
            f"wrong→right {len(flipped.get('to_right', []))})")
    if "p_value" in flipped:
        text += f", McNemar p={format_number(flipped['p_value'], 3)}"
    return escape(text)


def _tolerance_text(tolerance: Any) -> str:
    if not isinstance(tolerance, Mapping):
        return "—"
    parts = []
    if isinstance(tolerance.get("rel"), (int, float)):
        parts.append(f"±{tolerance['rel'] * 100:g} %")
    if isinstance(tolerance.get("abs"), (int, float)):
        parts.append(f"±{tolerance['abs']:g}")
    if tolerance.get("allow_improvement"):
        parts.append("improvement allowed")
    return escape(" or ".join(parts[:2]) + (", " + parts[2] if len(parts) > 2 else "")) or "—"


def render_scores(data: Mapping[str, Any]) -> str:
    rows = []
    for check in data.get("checks") or []:
        baseline, candidate, rel = check.get("baseline"), check.get("candidate"), check.get("rel_diff")
        delta = (candidate - baseline) if isinstance(baseline, (int, float)) and isinstance(candidate, (int, float)) else None
        rel_text = f"{rel * 100:+.2f} %" if isinstance(rel, (int, float)) else "—"
        rows.append(
            f'<tr class="{"" if check.get("passed") else "failed"}"><td>{escape(check.get("dataset"))}</td>'
            f"<td>{escape(check.get('metric'))}</td>"
            f"<td class=\"num\">{escape(format_number(baseline, 5))}</td>"
            f"<td class=\"num\">{escape(format_number(candidate, 5))}</td>"
            f"<td class=\"num\">{'—' if delta is None else f'{delta:+.4g}'}</td><td class=\"num\">{rel_text}</td>"
            f"<td>{_tolerance_text(check.get('tolerance'))}</td>"
            f"<td>{verdict_badge(bool(check.get('passed')))}</td><td>{_flipped_text(check.get('flipped'))}</td></tr>")
    verdict = data.get("verdict") or ("pass" if all(c.get("passed") for c in data.get("checks") or []) else "fail")
    return (f"<p>{verdict_badge(verdict)}</p><table><tr><th>dataset</th><th>metric</th><th>baseline</th>"
            "<th>candidate</th><th>delta</th><th>rel diff</th><th>tolerance</th><th>verdict</th>"
            "<th>flipped samples</th></tr>"
            + "".join(rows) + "</table>")
