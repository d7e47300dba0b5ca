"""The ``diff`` section (``accuracy diff``): metrics against their bounds, and the pictures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accuracy.report.html.common import images_block, metrics_cells, verdict_badge


def render_diff(data: Mapping[str, Any], images: Mapping[str, Any] | None = None) -> str:
    out = f"<p>{verdict_badge(data.get('verdict', 'error'))}</p>"
    out += f"<p>{metrics_cells(data.get('metrics') or {}, data.get('thresholds') or {})}</p>"
    return out + (images_block(images) if images else "")
