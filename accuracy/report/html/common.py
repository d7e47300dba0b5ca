"""What every section shares: escaping, numbers, verdict badges, inlined pictures, metric cells, the
page style."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1b1b1b;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 16px} th,td{border:1px solid #d6d6d6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;font-size:12px;color:#fff}
.pass{background:#1e8449} .fail{background:#c0392b} .error{background:#7f8c8d}
tr.failed td{background:#fdecea} td.bad{background:#f9d6d2} td.good{background:#dff3e4}
.pictures{display:flex;gap:12px;flex-wrap:wrap;margin:6px 0} figure{margin:0} figcaption{font-size:12px;color:#555}
.muted{color:#666} code{background:#f4f4f4;padding:0 3px}
pre.code{background:#f6f6f6;border:1px solid #ddd;padding:8px;overflow-x:auto;font-size:12px}
h3{font-size:15px;margin:18px 0 4px} img{image-rendering:pixelated}
"""

# Which metric leads when several are present.
METRIC_ORDER = ("ssim", "psnr", "cosine", "rel_l2", "max_abs", "mean_abs", "mse", "rmse", "max_rel", "cer", "wer", "mismatches")


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_number(value: Any, digits: int = 6) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, str):
        return value  # "inf"/"nan" as jsonable() writes them
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def verdict_badge(verdict: Any) -> str:
    word = ("pass" if verdict else "fail") if isinstance(verdict, bool) else str(verdict)
    css = word if word in ("pass", "fail") else "error"
    return f'<span class="verdict {css}">{escape(word)}</span>'


def image_tag(source: Any, *, caption: str, kind: str = "thumbnail") -> str:
    """A <figure> with the picture inlined; an unreadable source becomes a visible note, not a crash."""
    from accuracy.errors import AccuracyError
    from accuracy.report import pictures

    try:
        picture = _picture(source, kind=kind)
    except (AccuracyError, ValueError, OSError) as exc:
        return (f"<figure><figcaption>{escape(caption)}: picture unavailable ({escape(exc)})"
                "</figcaption></figure>")
    uri = pictures.data_uri(pictures.png_bytes(picture))
    return (f'<figure><img src="{uri}" alt="{escape(caption)}" '
            f'width="{picture.width}" height="{picture.height}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


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


def images_block(images: Mapping[str, Any]) -> str:
    """Thumbnails of expected and obtained, and a heat map of their difference."""
    from accuracy.compare.images import absolute_difference_map

    parts = [image_tag(images[role], caption=role) for role in ("expected", "obtained") if images.get(role) is not None]
    pair = _load_pair(images)
    if pair is not None:
        parts.append(image_tag(absolute_difference_map(*pair), caption="|difference| heat map", kind="heat"))
    elif images.get("diff") is not None:
        parts.append(image_tag(images["diff"], caption="difference", kind="full"))
    return f'<div class="pictures">{"".join(parts)}</div>' if parts else ""


def metrics_cells(metrics: Mapping[str, Any], thresholds: Mapping[str, Any]) -> str:
    """'ssim 0.9991 (min 0.98)' lines: each metric with its bound when it has one."""
    bounds = {}
    for key, bound in (thresholds or {}).items():
        if key.endswith("_min"):
            bounds[key[:-4]] = f"≥ {format_number(bound)}"
        elif key.endswith("_max"):
            bounds[key[:-4]] = f"≤ {format_number(bound)}"
        else:
            bounds[key] = f"≤ {format_number(bound)}"
    names = [m for m in METRIC_ORDER if m in metrics] + [m for m in metrics if m not in METRIC_ORDER]
    lines = []
    for name in names:
        value = metrics[name]
        if isinstance(value, (list, dict)):
            continue
        bound = f' <span class="muted">({bounds[name]})</span>' if name in bounds else ""
        lines.append(f"{escape(name)} {escape(format_number(value))}{bound}")
    return "<br>".join(lines) or '<span class="muted">—</span>'


def lead_metrics(metrics: Mapping[str, Any], count: int = 2) -> list[str]:
    return [m for m in METRIC_ORDER if m in metrics][:count] or [
        k for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)][:count]
