"""The ``demo`` section: the story ``accuracy demo`` prints, with the pictures a person compares.

The data is the demo's result (the bisect JSON plus ``story``: the steps the terminal prints, and
``demo``: the input photo's path). The input photo, the fp32 reference, the all-fp16 candidate and
their difference are shown side by side at ``SIDE`` pixels; then every step, its lines and its
code (the keep-fp32 table and the converter snippets) as text to copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accuracy.report.html.common import escape, verdict_badge

SIDE = 256  # pixels per picture: a 128 px pipeline image shown at twice its size, pixels kept sharp


def _load(path: Any):
    import numpy as np

    from accuracy.imageio import read_comparable

    return np.asarray(read_comparable(path).array)


def _figure(picture, caption: str, role: str) -> str:
    from accuracy.report import pictures

    uri = pictures.data_uri(pictures.png_bytes(picture))
    return (f'<figure data-role="{escape(role)}"><img src="{uri}" alt="{escape(caption)}" width="{picture.width}" '
            f'height="{picture.height}"><figcaption>{escape(caption)}</figcaption></figure>')


def _scaled(array):
    from PIL import Image

    from accuracy.report import pictures

    image = pictures.thumbnail(array, data_range=255.0 if array.dtype.kind in "ui" else 1.0, max_side=SIDE)
    return image.resize((SIDE, round(SIDE * image.height / image.width)), Image.Resampling.NEAREST)


def pictures_row(data: Mapping[str, Any]) -> str:
    """Input photo, fp32 reference, fp16 candidate and |difference|, side by side."""
    from accuracy.compare.images import absolute_difference_map
    from accuracy.errors import AccuracyError
    from accuracy.report import pictures

    files = next(iter((data.get("pictures") or {}).values()), {})
    photo = (data.get("demo") or {}).get("photo")
    try:
        reference = _load(files["reference"]) if files.get("reference") else None
        candidate = _load(files["all_candidate"]) if files.get("all_candidate") else None
        parts = [_figure(_scaled(_load(photo)), "input photo (img2img)", "input")] if photo else []
    except (AccuracyError, OSError, ValueError) as exc:
        return f'<p class="muted">pictures unavailable: {escape(exc)}</p>'
    if reference is not None:
        parts.append(_figure(_scaled(reference), "fp32 reference (ONNX Runtime)", "reference"))
    if candidate is not None:
        parts.append(_figure(_scaled(candidate), "fp16 candidate (every model)", "candidate"))
    if reference is not None and candidate is not None and reference.shape == candidate.shape:
        heat = pictures.heat_map(absolute_difference_map(reference, candidate), min_side=SIDE, max_side=SIDE)
        parts.append(_figure(heat, "|reference - candidate|", "difference"))
    return f'<div class="pictures">{"".join(parts)}</div>' if parts else ""


def render_demo(data: Mapping[str, Any]) -> str:
    culprits = ", ".join(data.get("culprits") or []) or "none"
    out = (f"<p>{verdict_badge(data.get('verdict', 'error'))} culprit: <strong>{escape(culprits)}</strong></p>"
           + pictures_row(data))
    for number, step in enumerate(data.get("story") or []):
        title = f"{number}. {step['title']}" if number else step["title"]
        out += f'<h3>{escape(title)}</h3>' + "".join(f"<p>{escape(line)}</p>" for line in step.get("lines", []))
        if step.get("code"):
            out += f'<pre class="code">{escape(step["code"].strip())}</pre>'
    return out
