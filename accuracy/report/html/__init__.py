"""One self-contained HTML report: every picture inlined as a data URI or SVG, no network resources.

Sections are the plain JSON-like dicts the producers already emit; each producer passes its own:

- ``{"kind": "suite", "data": SuiteResult.to_dict()}`` (gate, run, pytest plugin): verdict, each
  check's metrics against its thresholds. A check with ``"images": {"expected", "obtained", "diff"}``
  (file paths, arrays or PIL images; ``goldens.compare_with_golden(artifacts_dir=...)`` fills it)
  gets thumbnails and a difference heat map. Checks with ``dataset``/``metric`` keys (score suites)
  are shown as a score table.
- ``{"kind": "bisect", "data": bisect JSON}``: the swap matrix, models x (isolated, swap_in,
  leave_out), culprits marked, and the noise floor.
- ``{"kind": "demo", "data": the demo's result}`` (``accuracy demo``): the input photo, fp32 and fp16
  pictures side by side, and the story's steps with the fix to copy.
- ``{"kind": "localize", "data": localize JSON}``: the error curve (metric against operator index,
  log scale, first divergent operator marked) and the worst tensors.
- ``{"kind": "scores", "data": {"checks": [...]}}`` (``accuracy check``): scores with deltas and
  flipped-sample counts.
- ``{"kind": "diff", "data": diff JSON, "images": {...}}`` (``accuracy diff``): metrics and pictures.

A producer's dict may also be passed bare, without the ``{"kind", "data"}`` wrapper (``accuracy gate``
passes ``SuiteResult.to_dict()`` as is); its kind is then told from its keys (``suite`` + ``checks``
-> suite, ``story`` -> demo, ``culprits`` -> bisect, ``tensors`` -> localize, checks with ``dataset`` -> scores,
``metrics`` -> diff). ``"title"`` is optional.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accuracy.io import write_bytes_atomic
from accuracy.report.html.bisect import render_bisect
from accuracy.report.html.common import STYLE, escape
from accuracy.report.html.demo import render_demo
from accuracy.report.html.diff import render_diff
from accuracy.report.html.localize import render_localize
from accuracy.report.html.scores import render_scores
from accuracy.report.html.suite import render_suite

__all__ = [
    "RENDERERS",
    "render_bisect",
    "render_demo",
    "render_diff",
    "render_localize",
    "render_report",
    "render_scores",
    "render_suite",
    "section_kind",
    "write_report",
]

RENDERERS: dict[str, Callable[..., str]] = {
    "suite": render_suite, "bisect": render_bisect, "localize": render_localize,
    "scores": render_scores, "diff": render_diff, "demo": render_demo,
}


def section_kind(section: Mapping[str, Any]) -> str:
    """The wrapper's ``kind``, or what the data says it is. A producer's dict passed bare (no
    ``"data"`` key) is always inferred: a ``SuiteResult`` has its own ``kind`` (pipeline, llm, scores)."""
    if "data" in section and section.get("kind"):
        return str(section["kind"])
    data = section.get("data", section)
    if "suite" in data and "checks" in data:
        return "suite"
    if "story" in data:
        return "demo"
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
        body.append(f'<section id="s{index}" data-kind="{escape(kind)}"><h2>{escape(heading)}</h2>{content}</section>')
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><p class=\"muted\">accuracy {__version__} — {stamp}</p>"
        + "".join(body) + "</body></html>\n"
    )


def write_report(path: str | Path, sections: Sequence[Mapping[str, Any]], *, title: str = "accuracy report") -> Path:
    """Render and write the report atomically; returns its path."""
    return write_bytes_atomic(path, render_report(sections, title=title).encode("utf-8"))
