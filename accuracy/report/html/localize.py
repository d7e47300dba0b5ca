"""The ``localize`` section: the error curve along the operators, first divergent operator marked,
and the worst tensors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from accuracy.report.html.common import escape, format_number, lead_metrics, verdict_badge


def _short_metrics(metrics: Mapping[str, Any] | None) -> str:
    """The three headline metrics on one line (cosine, relative L2, max abs ... whichever exist)."""
    if not metrics:
        return '<span class="muted">—</span>'
    text = ", ".join(f"{escape(m)} {escape(format_number(metrics[m], 6))}" for m in lead_metrics(metrics, 3))
    nonfinite = metrics.get("nonfinite_obtained", metrics.get("nonfinite"))
    if isinstance(nonfinite, (int, float)) and nonfinite > 0:
        text += f", <strong>{escape(format_number(nonfinite))} non-finite</strong>"
    return text


def _error_series(tensors: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, list]]:
    """Pick the metric to plot and turn it into 'error' (1 - cosine for cosine)."""
    first = next((t.get("metrics") or {} for t in tensors if t.get("metrics")), {})
    metric = next((m for m in ("cosine", "rel_l2", "max_abs", "max_rel") if m in first), None)
    if metric is None:
        return "error", {}

    def error(value: Any) -> float | None:
        if value is None:
            return None
        number = float(value)
        return 1.0 - number if metric == "cosine" else number

    series = {"accumulated": [error((t.get("metrics") or {}).get(metric)) for t in tensors]}
    if any(isinstance(t.get("local"), Mapping) and metric in t["local"] for t in tensors):
        series["local"] = [error((t.get("local") or {}).get(metric)) for t in tensors]
    label = "1 − cosine" if metric == "cosine" else metric
    return label, series


def render_localize(data: Mapping[str, Any]) -> str:
    from accuracy.report.pictures import error_curve_svg

    tensors = list(data.get("tensors") or [])
    first = data.get("first_divergent")
    out = f"<p>{verdict_badge(data.get('verdict', 'error'))} "
    if isinstance(first, Mapping):
        out += (f"first divergent operator: <strong>{escape(first.get('node'))}</strong> "
                f"(<code>{escape(first.get('op_type'))}</code>, "
                f"tensor <code>{escape(first.get('tensor'))}</code>) "
                f"{_short_metrics(first.get('metrics'))}"
                + (f"; alone: {_short_metrics(first['local_metrics'])}" if first.get("local_metrics") else ""))
    else:
        out += "no divergent operator"
    out += "</p>"
    label, series = _error_series(tensors)
    thresholds = data.get("thresholds") or {}
    threshold = 1 - thresholds["cosine_min"] if label == "1 − cosine" and "cosine_min" in thresholds else None
    marker = next((i for i, t in enumerate(tensors) if isinstance(first, Mapping)
                   and t.get("tensor") == first.get("tensor") and t.get("node") == first.get("node")), None)
    if series:
        out += error_curve_svg(series, labels=[f"{t.get('node')} ({t.get('op_type')})" for t in tensors],
                               marker=marker, threshold=threshold, y_label=label)
    def badness(i: int) -> float:
        value = series["accumulated"][i] if series else None
        return math.inf if value is not None and math.isnan(value) else (value or 0.0)

    shown = set(sorted(range(len(tensors)), key=badness, reverse=True)[:12])
    shown |= {i for i, t in enumerate(tensors) if t.get("status") == "introduced"}
    rows = "".join(
        f"<tr class=\"{'failed' if tensors[i].get('passed') is False else ''}\"><td class=\"num\">{i}</td>"
        f"<td>{escape(tensors[i].get('node'))}</td><td>{escape(tensors[i].get('op_type'))}</td>"
        f"<td>{escape(tensors[i].get('status', ''))}</td>"
        f"<td>{_short_metrics(tensors[i].get('metrics'))}</td>"
        f"<td>{_short_metrics(tensors[i].get('local'))}</td></tr>" for i in sorted(shown)[:40])
    if rows:
        out += ("<p class=\"muted\">accumulated: the tensor against the reference in the full run; local: the "
                "operator alone, fed the reference's inputs (error it introduces itself).</p>"
                "<table><tr><th>#</th><th>node</th><th>op</th><th>status</th><th>accumulated</th><th>local</th></tr>"
                + rows + "</table>")
    return out
