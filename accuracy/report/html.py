"""One self-contained HTML report: every picture inlined as a data URI or SVG, no network resources.

Sections are the plain JSON-like dicts the producers already emit; each producer passes its own:

- ``{"kind": "suite", "data": SuiteResult.to_dict()}`` (gate, run, pytest plugin): verdict, each
  check's metrics against its thresholds. A check with ``"images": {"expected", "obtained", "diff"}``
  (file paths, arrays or PIL images; ``goldens.compare_with_golden(artifacts_dir=...)`` fills it)
  gets thumbnails and a difference heat map. Checks with ``dataset``/``metric`` keys (score suites)
  are shown as a score table.
- ``{"kind": "bisect", "data": bisect JSON}``: the swap matrix, models x (isolated, swap_in,
  leave_out), culprits marked, and the noise floor.
- ``{"kind": "localize", "data": localize JSON}``: the error curve (metric against operator index,
  log scale, first divergent operator marked) and the worst tensors.
- ``{"kind": "scores", "data": {"checks": [...]}}`` (``accuracy check``): scores with deltas and
  flipped-sample counts.
- ``{"kind": "diff", "data": diff JSON, "images": {...}}`` (``accuracy diff``): metrics and pictures.

A producer's dict may also be passed bare, without the ``{"kind", "data"}`` wrapper (``accuracy gate``
passes ``SuiteResult.to_dict()`` as is); its kind is then told from its keys (``suite`` + ``checks``
-> suite, ``culprits`` -> bisect, ``tensors`` -> localize, checks with ``dataset`` -> scores,
``metrics`` -> diff). ``"title"`` is optional.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accuracy.io import write_bytes_atomic

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1b1b1b;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px} th,td{border:1px solid #d6d6d6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;font-size:12px;color:#fff}
.pass{background:#1e8449} .fail{background:#c0392b} .error{background:#7f8c8d}
tr.failed td{background:#fdecea} td.bad{background:#f9d6d2} td.good{background:#dff3e4}
.pictures{display:flex;gap:12px;flex-wrap:wrap;margin:6px 0} figure{margin:0} figcaption{font-size:12px;color:#555}
.muted{color:#666} code{background:#f4f4f4;padding:0 3px}
"""

# Which metric leads when several are present.
_METRIC_ORDER = ("ssim", "psnr", "cosine", "rel_l2", "max_abs", "mean_abs", "mse", "rmse", "max_rel")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 6) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, str):
        return value  # "inf"/"nan" as jsonable() writes them
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def _verdict(verdict: Any) -> str:
    word = ("pass" if verdict else "fail") if isinstance(verdict, bool) else str(verdict)
    css = word if word in ("pass", "fail") else "error"
    return f'<span class="verdict {css}">{_e(word)}</span>'


def _image_tag(source: Any, *, caption: str, kind: str = "thumbnail") -> str:
    """A <figure> with the picture inlined; an unreadable source becomes a visible note, not a crash."""
    from accuracy.errors import AccuracyError
    from accuracy.report import pictures

    try:
        picture = _picture(source, kind=kind)
    except (AccuracyError, ValueError, OSError) as exc:
        return f'<figure><figcaption>{_e(caption)}: picture unavailable ({_e(exc)})</figcaption></figure>'
    uri = pictures.data_uri(pictures.png_bytes(picture))
    return (f'<figure><img src="{uri}" alt="{_e(caption)}" width="{picture.width}" height="{picture.height}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _picture(source: Any, *, kind: str):
    import numpy as np
    from PIL import Image

    from accuracy.report import pictures

    max_side = 720 if kind == "full" else 192  # "full": a finished picture (triptych), kept readable
    if isinstance(source, Image.Image):
        return pictures.thumbnail(source, max_side=max_side)
    if isinstance(source, (str, Path)):
        from accuracy.imageio import read_comparable

        loaded = read_comparable(source)
        array, data_range = loaded.array, loaded.data_range
    else:
        array = np.asarray(source)
        from accuracy.compare.images import data_range_for

        data_range = data_range_for(array)
    if kind == "heat":
        return pictures.heat_map(array, min_side=160, max_side=192)
    return pictures.thumbnail(array, data_range=data_range, max_side=max_side)


def _load_pair(images: Mapping[str, Any]):
    """Expected and obtained arrays when both are available and the same shape, else None."""
    import numpy as np

    arrays = []
    for role in ("expected", "obtained"):
        source = images.get(role)
        if source is None:
            return None
        if isinstance(source, (str, Path)):
            from accuracy.errors import AccuracyError
            from accuracy.imageio import read_comparable

            try:
                source = read_comparable(source).array
            except AccuracyError:
                return None
        arrays.append(np.asarray(source))
    return arrays if arrays[0].shape == arrays[1].shape and arrays[0].ndim in (2, 3) else None


def _images_block(images: Mapping[str, Any]) -> str:
    """Thumbnails of expected and obtained, and a heat map of their difference."""
    from accuracy.compare.images import absolute_difference_map

    parts = [_image_tag(images[role], caption=role) for role in ("expected", "obtained") if images.get(role) is not None]
    pair = _load_pair(images)
    if pair is not None:
        parts.append(_image_tag(absolute_difference_map(*pair), caption="|difference| heat map", kind="heat"))
    elif images.get("diff") is not None:
        parts.append(_image_tag(images["diff"], caption="difference", kind="full"))
    return f'<div class="pictures">{"".join(parts)}</div>' if parts else ""


def _metrics_cells(metrics: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
    """'ssim 0.9991 (min 0.98)' lines: each metric with its bound when it has one."""
    bounds = {}
    for key, bound in (thresholds or {}).items():
        if key.endswith("_min"):
            bounds[key[:-4]] = f"≥ {_number(bound)}"
        elif key.endswith("_max"):
            bounds[key[:-4]] = f"≤ {_number(bound)}"
        else:
            bounds[key] = f"≤ {_number(bound)}"
    names = [m for m in _METRIC_ORDER if m in metrics] + [m for m in metrics if m not in _METRIC_ORDER]
    lines = []
    for name in names:
        value = metrics[name]
        if isinstance(value, (list, dict)):
            continue
        bound = f' <span class="muted">({bounds[name]})</span>' if name in bounds else ""
        lines.append(f"{_e(name)} {_e(_number(value))}{bound}")
    return "<br>".join(lines) or '<span class="muted">—</span>'


def _check_metrics(check: Mapping[str, Any]) -> tuple[dict, dict]:
    metrics = check.get("metrics")
    if not isinstance(metrics, Mapping):  # tensor checks keep their metrics at the top level
        metrics = {k: v for k, v in check.items() if k in _METRIC_ORDER}
    return dict(metrics), dict(check.get("thresholds") or {})


def _notes(notes: Any) -> str:
    if not isinstance(notes, list) or not notes:
        return ""
    return "".join(f'<br><span class="muted">note: {_e(note)}</span>' for note in notes)


def render_suite(data: Mapping[str, Any]) -> str:
    checks = list(data.get("checks") or [])
    head = (f"<p>{_verdict(data.get('verdict', 'error'))} kind <code>{_e(data.get('kind', '?'))}</code>"
            f"{' — ' + _e(data['path']) if data.get('path') else ''}</p>")
    if data.get("error"):
        head += f'<p class="fail-text"><strong>error:</strong> {_e(data["error"])}</p>'
    if checks and all("dataset" in c for c in checks):
        return head + render_scores({"checks": checks})
    rows = []
    for check in checks:
        metrics, thresholds = _check_metrics(check)
        pictures = _images_block(check["images"]) if isinstance(check.get("images"), Mapping) else ""
        latents = check.get("latents")
        latent_cell = f"<br><em>latents</em><br>{_metrics_cells(latents, {})}" if isinstance(latents, Mapping) else ""
        rows.append(
            f'<tr class="{"" if check.get("passed") else "failed"}"><td>{_e(check.get("name", "?"))}</td>'
            f"<td>{_verdict(bool(check.get('passed')))}</td><td>{_metrics_cells(metrics, thresholds)}{latent_cell}</td>"
            f"<td>{_e(check.get('message', ''))}{_notes(check.get('notes'))}{pictures}</td></tr>"
        )
    table = ("<table><tr><th>check</th><th>verdict</th><th>metrics (bound)</th><th>message</th></tr>"
             + "".join(rows) + "</table>") if rows else '<p class="muted">no checks</p>'
    return head + table


def _lead_metrics(metrics: Mapping[str, Any], count: int = 2) -> list[str]:
    return [m for m in _METRIC_ORDER if m in metrics][:count] or [
        k for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)][:count]


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
        reason = _e(run.get("reason", ""))
        return f'<td class="muted" title="{reason}">skipped<br><small>{reason}</small></td>'
    metrics = run.get("metrics") if isinstance(run.get("metrics"), Mapping) else run
    lines = [f"{_e(m)} {_e(_number(metrics[m], 5))}" for m in _lead_metrics(metrics)]
    if run.get("verdict") not in (None, "pass", "fail"):
        lines.append(f"<strong>{_e(run['verdict'])}</strong>")  # e.g. non-finite
    passed = _run_passed(run)
    css = "" if passed is None else (' class="good"' if passed else ' class="bad"')
    failures = run.get("failures") or []
    title = f' title="{_e("; ".join(map(str, failures)))}"' if failures else ""
    return f"<td{css}{title}>{'<br>'.join(lines) or '—'}</td>"


def _short_metrics(metrics: Mapping[str, Any] | None) -> str:
    """The three headline metrics on one line (cosine, relative L2, max abs ... whichever exist)."""
    if not metrics:
        return '<span class="muted">—</span>'
    text = ", ".join(f"{_e(m)} {_e(_number(metrics[m], 6))}" for m in _lead_metrics(metrics, 3))
    nonfinite = metrics.get("nonfinite_obtained", metrics.get("nonfinite"))
    if isinstance(nonfinite, (int, float)) and nonfinite > 0:
        text += f", <strong>{_e(_number(nonfinite))} non-finite</strong>"
    return text


def render_bisect(data: Mapping[str, Any]) -> str:
    """The swap matrix: one row per model, one column per experiment, culprits marked."""
    culprits = list(data.get("culprits") or [])
    experiments = ("isolated", "swap_in", "leave_out")
    rows = []
    for name, runs in (data.get("models") or {}).items():
        cells = "".join(_run_cell((runs or {}).get(experiment)) for experiment in experiments)
        mark = " <strong>← culprit</strong>" if name in culprits else ""
        rows.append(f"<tr><td>{_e(name)}{mark}</td>{cells}</tr>")
    for label, key in (("all models on the candidate", "all_candidate"), ("noise floor (reference twice)", "noise_floor")):
        if isinstance(data.get(key), Mapping):
            rows.append(f'<tr><td><em>{label}</em></td>{_run_cell(data[key])}<td colspan="2"></td></tr>')
    culprit_text = ", ".join(_e(c) for c in culprits) or "none"
    smallest = data.get("smallest_failing")
    out = (f"<p>{_verdict(data.get('verdict', 'error'))} culprits: <strong>{culprit_text}</strong>"
           + (f"; smallest failing set: {_e(', '.join(smallest))}" if smallest else "") + "</p>"
           '<p class="muted">isolated: the model alone on the candidate, fed the reference\'s recorded inputs; '
           "swap_in: the pipeline with only this model on the candidate; leave_out: the pipeline with every "
           "model on the candidate except this one. Green passes, red fails (hover for why).</p>"
           "<table><tr><th>model</th>" + "".join(f"<th>{e}</th>" for e in experiments) + "</tr>"
           + "".join(rows) + "</table>")
    return out


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
    out = f"<p>{_verdict(data.get('verdict', 'error'))} "
    if isinstance(first, Mapping):
        out += (f"first divergent operator: <strong>{_e(first.get('node'))}</strong> "
                f"(<code>{_e(first.get('op_type'))}</code>, tensor <code>{_e(first.get('tensor'))}</code>) "
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
        f"<td>{_e(tensors[i].get('node'))}</td><td>{_e(tensors[i].get('op_type'))}</td>"
        f"<td>{_e(tensors[i].get('status', ''))}</td>"
        f"<td>{_short_metrics(tensors[i].get('metrics'))}</td>"
        f"<td>{_short_metrics(tensors[i].get('local'))}</td></tr>" for i in sorted(shown)[:40])
    if rows:
        out += ("<p class=\"muted\">accumulated: the tensor against the reference in the full run; local: the "
                "operator alone, fed the reference's inputs (error it introduces itself).</p>"
                "<table><tr><th>#</th><th>node</th><th>op</th><th>status</th><th>accumulated</th><th>local</th></tr>"
                + rows + "</table>")
    return out


def _flipped_text(flipped: Any) -> str:
    if not isinstance(flipped, Mapping):
        return _e(_number(flipped)) if flipped is not None else "—"
    count = flipped.get("count", len(flipped.get("to_wrong", [])) + len(flipped.get("to_right", [])))
    text = (f"{count} of {flipped.get('common', '?')} (right→wrong {len(flipped.get('to_wrong', []))}, "
            f"wrong→right {len(flipped.get('to_right', []))})")
    if "p_value" in flipped:
        text += f", McNemar p={_number(flipped['p_value'], 3)}"
    return _e(text)


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
    return _e(" or ".join(parts[:2]) + (", " + parts[2] if len(parts) > 2 else "")) or "—"


def render_scores(data: Mapping[str, Any]) -> str:
    rows = []
    for check in data.get("checks") or []:
        baseline, candidate, rel = check.get("baseline"), check.get("candidate"), check.get("rel_diff")
        delta = (candidate - baseline) if isinstance(baseline, (int, float)) and isinstance(candidate, (int, float)) else None
        rel_text = f"{rel * 100:+.2f} %" if isinstance(rel, (int, float)) else "—"
        rows.append(
            f'<tr class="{"" if check.get("passed") else "failed"}"><td>{_e(check.get("dataset"))}</td>'
            f"<td>{_e(check.get('metric'))}</td><td class=\"num\">{_e(_number(baseline, 5))}</td>"
            f"<td class=\"num\">{_e(_number(candidate, 5))}</td>"
            f"<td class=\"num\">{'—' if delta is None else f'{delta:+.4g}'}</td><td class=\"num\">{rel_text}</td>"
            f"<td>{_tolerance_text(check.get('tolerance'))}</td>"
            f"<td>{_verdict(bool(check.get('passed')))}</td><td>{_flipped_text(check.get('flipped'))}</td></tr>")
    verdict = data.get("verdict") or ("pass" if all(c.get("passed") for c in data.get("checks") or []) else "fail")
    return (f"<p>{_verdict(verdict)}</p><table><tr><th>dataset</th><th>metric</th><th>baseline</th>"
            "<th>candidate</th><th>delta</th><th>rel diff</th><th>tolerance</th><th>verdict</th>"
            "<th>flipped samples</th></tr>"
            + "".join(rows) + "</table>")


def render_diff(data: Mapping[str, Any], images: Mapping[str, Any] | None = None) -> str:
    out = f"<p>{_verdict(data.get('verdict', 'error'))}</p>"
    out += f"<p>{_metrics_cells(data.get('metrics') or {}, data.get('thresholds') or {})}</p>"
    return out + (_images_block(images) if images else "")


RENDERERS: dict[str, Callable[..., str]] = {
    "suite": render_suite, "bisect": render_bisect, "localize": render_localize,
    "scores": render_scores, "diff": render_diff,
}


def section_kind(section: Mapping[str, Any]) -> str:
    """The wrapper's ``kind``, or what the data says it is. A producer's dict passed bare (no
    ``"data"`` key) is always inferred: a ``SuiteResult`` has its own ``kind`` (pipeline, llm, scores)."""
    if "data" in section and section.get("kind"):
        return str(section["kind"])
    data = section.get("data", section)
    if "suite" in data and "checks" in data:
        return "suite"
    if "culprits" in data or "models" in data:
        return "bisect"
    if "tensors" in data or "first_divergent" in data:
        return "localize"
    if "suite" in data:
        return "suite"
    if data.get("checks") and all("dataset" in c for c in data["checks"]):
        return "scores"
    if "metrics" in data:
        return "diff"
    raise ValueError(f"cannot tell what kind of section this is (keys: {sorted(data)[:8]}); pass 'kind'")


def render_report(sections: Sequence[Mapping[str, Any]], *, title: str = "accuracy report") -> str:
    """The whole page as one string. Each section: ``{"kind", "data", "title"?}`` (see module doc)."""
    import datetime as dt

    from accuracy import __version__

    body = []
    for index, section in enumerate(sections):
        kind = section_kind(section)
        if kind not in RENDERERS:
            raise ValueError(f"unknown report section kind {kind!r}; known: {', '.join(RENDERERS)}")
        data = section.get("data", section)
        heading = section.get("title") or data.get("suite") or kind
        content = (render_diff(data, section.get("images")) if kind == "diff" else RENDERERS[kind](data))
        body.append(f'<section id="s{index}" data-kind="{_e(kind)}"><h2>{_e(heading)}</h2>{content}</section>')
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class=\"muted\">accuracy {__version__} — {stamp}</p>"
        + "".join(body) + "</body></html>\n"
    )


def write_report(path: str | Path, sections: Sequence[Mapping[str, Any]], *, title: str = "accuracy report") -> Path:
    """Render and write the report atomically; returns its path."""
    return write_bytes_atomic(path, render_report(sections, title=title).encode("utf-8"))
