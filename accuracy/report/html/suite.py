"""The ``suite`` section: a suite's verdict and each check's metrics against its thresholds, with
pictures where a check has them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accuracy.report.html.common import (
    METRIC_ORDER,
    escape,
    images_block,
    metrics_cells,
    verdict_badge,
)
from accuracy.report.html.scores import render_scores


def _check_metrics(check: Mapping[str, Any]) -> tuple[dict, dict]:
    metrics = check.get("metrics")
    if not isinstance(metrics, Mapping):  # tensor checks keep their metrics at the top level
        metrics = {k: v for k, v in check.items() if k in METRIC_ORDER}
    return dict(metrics), dict(check.get("thresholds") or {})


def _notes(notes: Any) -> str:
    if not isinstance(notes, list) or not notes:
        return ""
    return "".join(f'<br><span class="muted">note: {escape(note)}</span>' for note in notes)


def render_suite(data: Mapping[str, Any]) -> str:
    checks = list(data.get("checks") or [])
    head = (f"<p>{verdict_badge(data.get('verdict', 'error'))} "
            f"kind <code>{escape(data.get('kind', '?'))}</code>"
            f"{' — ' + escape(data['path']) if data.get('path') else ''}</p>")
    if data.get("error"):
        head += f'<p class="fail-text"><strong>error:</strong> {escape(data["error"])}</p>'
    if data.get("skipped"):
        head += f'<p class="muted"><strong>skipped:</strong> {escape(data["skipped"])}</p>'
    if checks and all("dataset" in c for c in checks):
        return head + render_scores({"checks": checks})
    rows = []
    for check in checks:
        metrics, thresholds = _check_metrics(check)
        pictures = images_block(check["images"]) if isinstance(check.get("images"), Mapping) else ""
        latents = check.get("latents")
        latent_cell = f"<br><em>latents</em><br>{metrics_cells(latents, {})}" if isinstance(latents, Mapping) else ""
        rows.append(
            f'<tr class="{"" if check.get("passed") else "failed"}"><td>{escape(check.get("name", "?"))}</td>'
            f"<td>{verdict_badge(bool(check.get('passed')))}</td><td>{metrics_cells(metrics, thresholds)}{latent_cell}</td>"
            f"<td>{escape(check.get('message', ''))}{_notes(check.get('notes'))}{pictures}</td></tr>"
        )
    table = ("<table><tr><th>check</th><th>verdict</th><th>metrics (bound)</th><th>message</th></tr>"
             + "".join(rows) + "</table>") if rows else '<p class="muted">no checks</p>'
    return head + table
