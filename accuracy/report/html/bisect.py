"""The ``bisect`` section: the swap matrix, models x (isolated, swap_in, leave_out), culprits marked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accuracy.report.html.common import escape, format_number, images_block, lead_metrics, verdict_badge


def _run_passed(run: Mapping[str, Any]) -> bool | None:
    """A bisect run's verdict: ``passed`` when present, else its ``verdict`` word."""
    if "passed" in run:
        return bool(run["passed"])
    if "verdict" in run:
        return run["verdict"] == "pass"
    return None


def _run_cell(run: Any) -> str:
    if not isinstance(run, Mapping):
        return '<td class="muted">—</td>'
    if run.get("verdict") == "skipped":
        reason = escape(run.get("reason", ""))
        return f'<td class="muted" title="{reason}">skipped<br><small>{reason}</small></td>'
    metrics = run.get("metrics") if isinstance(run.get("metrics"), Mapping) else run
    lines = [f"{escape(m)} {escape(format_number(metrics[m], 5))}" for m in lead_metrics(metrics)]
    passed = _run_passed(run)
    worst = run.get("worst") if isinstance(run.get("worst"), Mapping) else None
    if worst and passed is False:  # the worst output and why, never a passing number as the headline
        lines = [f"<strong>{escape(worst.get('output', '?'))}</strong>: {escape(worst.get('text', ''))}"] + \
            [f'<small class="muted">{line}</small>' for line in lines]
    elif worst and len(run.get("outputs") or ()) > 1:
        lines.append(f'<small class="muted">worst: {escape(worst.get("output", "?"))}</small>')
    if run.get("verdict") not in (None, "pass", "fail"):
        lines.append(f"<strong>{escape(run['verdict'])}</strong>")  # e.g. non-finite
    css = "" if passed is None else (' class="good"' if passed else ' class="bad"')
    failures = run.get("failures") or []
    title = f' title="{escape("; ".join(map(str, failures)))}"' if failures else ""
    return f"<td{css}{title}>{'<br>'.join(lines) or '—'}</td>"


def render_bisect(data: Mapping[str, Any]) -> str:
    """The swap matrix: one row per model, one column per experiment, culprits marked."""
    culprits = list(data.get("culprits") or [])
    experiments = ("isolated", "swap_in", "leave_out")
    rows = []
    for name, runs in (data.get("models") or {}).items():
        cells = "".join(_run_cell((runs or {}).get(experiment)) for experiment in experiments)
        mark = " <strong>← culprit</strong>" if name in culprits else ""
        rows.append(f"<tr><td>{escape(name)}{mark}</td>{cells}</tr>")
    for label, key in (("all models on the candidate", "all_candidate"), ("noise floor (reference twice)", "noise_floor")):
        if isinstance(data.get(key), Mapping):
            rows.append(f'<tr><td><em>{label}</em></td>{_run_cell(data[key])}<td colspan="2"></td></tr>')
    culprit_text = ", ".join(escape(c) for c in culprits) or "none"
    smallest = data.get("smallest_failing")
    out = (f"<p>{verdict_badge(data.get('verdict', 'error'))} culprits: <strong>{culprit_text}</strong>"
           + (f"; smallest failing set: {escape(', '.join(smallest))}" if smallest else "") + "</p>"
           '<p class="muted">isolated: the model alone on the candidate, fed the reference\'s recorded inputs; '
           "swap_in: the pipeline with only this model on the candidate; leave_out: the pipeline with every "
           "model on the candidate except this one. Green passes, red fails (hover for why).</p>"
           "<table><tr><th>model</th>" + "".join(f"<th>{e}</th>" for e in experiments) + "</tr>"
           + "".join(rows) + "</table>")
    for output, files in (data.get("pictures") or {}).items():
        if not isinstance(files, Mapping) or "reference" not in files:
            continue
        for label, path in files.items():
            if label == "reference":
                continue
            title = "all models on the candidate" if label == "all_candidate" else \
                f"only {label.split(':', 1)[1]} on the candidate"
            out += (f"<h3>{escape(output)}: reference (expected) against {escape(title)} (obtained)</h3>"
                    + images_block({"expected": files["reference"], "obtained": path}))
    return out
