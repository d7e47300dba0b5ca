"""Pictures people look at: a heat map of the per-pixel difference with a colour bar, the triptych
expected | obtained | difference, thumbnails, and PNG bytes / data URIs for the HTML report.

Drawn with Pillow alone (no matplotlib), so reports work wherever the core package does. Images in
are arrays as ``accuracy.imageio`` returns them (uint8/uint16/float, grey or RGB); images out are
``PIL.Image`` objects. Small images (the tiny test pipeline makes 32x32 pictures) are enlarged with
nearest-neighbour pixels so a person can see them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

# Perceptually ordered dark -> bright ramp (close to matplotlib's "inferno"): black is "no difference".
_RAMP = np.array(
    [(0, 0, 4), (31, 12, 72), (85, 15, 109), (136, 34, 106), (186, 54, 85),
     (227, 89, 51), (249, 140, 10), (249, 201, 50), (252, 255, 164)],
    dtype=np.float64,
)
MIN_DISPLAY_SIDE = 160
_BACKGROUND = (255, 255, 255)
_INK = (20, 20, 20)
_PAD = 6  # room above and below the colour bar for its end labels


def colour_map(values: np.ndarray) -> np.ndarray:
    """Map values in 0..1 (clipped; NaN shown bright magenta) to RGB uint8 along the ramp."""
    values = np.asarray(values, dtype=np.float64)
    nan = ~np.isfinite(values)
    position = np.clip(np.where(nan, 0.0, values), 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(position).astype(int).clip(0, len(_RAMP) - 2)
    weight = (position - low)[..., None]
    rgb = _RAMP[low] * (1 - weight) + _RAMP[low + 1] * weight
    rgb[nan] = (255, 0, 255)
    return np.round(rgb).astype(np.uint8)


def to_display(image: np.ndarray, *, data_range: float) -> np.ndarray:
    """An image array as RGB uint8 for showing: scaled by ``data_range``, grey repeated to RGB."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"cannot show an array of shape {np.shape(image)} as an image")
    array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    scaled = array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating) and scaled.size and np.nanmin(scaled) < 0:
        scaled = scaled - np.nanmin(scaled)  # e.g. images in -1..1
    scaled = np.nan_to_num(scaled / float(data_range), nan=0.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def _pil(array: np.ndarray) -> Image.Image:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(array))


def _enlarge(image: Image.Image, *, min_side: int = MIN_DISPLAY_SIDE) -> Image.Image:
    from PIL import Image

    factor = max(1, min_side // max(1, min(image.size)))
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _format_tick(value: float) -> str:
    if value == 0:
        return "0"
    if 100 <= abs(value) < 1e6:
        return f"{value:.0f}"
    if abs(value) >= 1e6 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def max_pool(values: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (ceil(H/f), ceil(W/f)): each block's largest value (NaN wins: it is the worst)."""
    height, width = values.shape
    padded = np.full((-(-height // factor) * factor, -(-width // factor) * factor), -np.inf)
    padded[:height, :width] = values
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    pooled = blocks.max(axis=(1, 3))  # np.max propagates NaN
    return pooled


def heat_map(
    difference: np.ndarray,
    *,
    vmax: float | None = None,
    colour_bar: bool = True,
    min_side: int = MIN_DISPLAY_SIDE,
    max_side: int | None = None,
) -> Image.Image:
    """A heat map of a per-pixel difference (H, W), black = equal, with a labelled colour bar.

    ``vmax`` sets the top of the scale (default: the largest difference, so the worst pixel is
    brightest and small errors stay visible); it is written on the bar so the picture is honest.
    ``max_side`` shrinks a large map by taking the maximum of each block, so no bad pixel vanishes
    from a thumbnail. NaN pixels are drawn magenta.
    """
    from PIL import ImageDraw

    difference = np.asarray(difference, dtype=np.float64)
    if difference.ndim != 2:
        raise ValueError(f"a difference map is (H, W); got {difference.shape}")
    if max_side is not None and max(difference.shape) > max_side:
        difference = max_pool(difference, -(-max(difference.shape) // max_side))
    finite = difference[np.isfinite(difference)]
    top = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 0.0)
    scale = top if top > 0 else 1.0
    picture = _enlarge(_pil(colour_map(difference / scale)), min_side=min_side)
    if not colour_bar:
        return picture
    font = _font(11)
    bar_width, gap, text_width = 14, 8, 60
    canvas = _pil(np.full((picture.height + 2 * _PAD, picture.width + gap + bar_width + text_width, 3),
                          _BACKGROUND, dtype=np.uint8))
    canvas.paste(picture, (0, _PAD))
    ramp = np.linspace(1.0, 0.0, picture.height)[:, None].repeat(bar_width, axis=1)
    canvas.paste(_pil(colour_map(ramp)), (picture.width + gap, _PAD))
    draw = ImageDraw.Draw(canvas)
    x_text = picture.width + gap + bar_width + 4
    for fraction in (1.0, 0.5, 0.0):
        y = _PAD + round((1 - fraction) * (picture.height - 1))
        draw.line([(picture.width + gap + bar_width, y), (x_text - 1, y)], fill=_INK)
        draw.text((x_text, min(max(y - 6, 0), canvas.height - 12)), _format_tick(top * fraction),
                  fill=_INK, font=font)
    return canvas


def strip(panels: Sequence[Image.Image], labels: Sequence[str]) -> Image.Image:
    """Panels side by side on a white background, each with a caption above it."""
    from PIL import ImageDraw

    font = _font(13)
    pad, caption = 8, 22
    height = max(p.height for p in panels) + caption + 2 * pad
    width = sum(p.width for p in panels) + pad * (len(panels) + 1)
    canvas = _pil(np.full((height, width, 3), _BACKGROUND, dtype=np.uint8))
    draw = ImageDraw.Draw(canvas)
    x = pad
    for panel, text in zip(panels, labels):
        draw.text((x, pad), text, fill=_INK, font=font)
        top = pad + caption - (_PAD if panel.height > panels[0].height else 0)
        canvas.paste(panel.convert("RGB"), (x, top))
        x += panel.width + pad
    return canvas


def triptych(
    image_true: np.ndarray,
    image_test: np.ndarray,
    *,
    data_range: float,
    labels: tuple[str, str, str] = ("expected", "obtained", "|difference|"),
) -> Image.Image:
    """expected | obtained | heat map of their difference (with its colour bar), one picture."""
    from accuracy.compare.images import absolute_difference_map

    expected = _enlarge(_pil(to_display(image_true, data_range=data_range)))
    obtained = _enlarge(_pil(to_display(image_test, data_range=data_range)))
    difference = heat_map(absolute_difference_map(image_true, image_test), min_side=min(expected.size))
    return strip([expected, obtained, difference], labels)


def thumbnail(image: np.ndarray | Image.Image, *, data_range: float = 255.0, max_side: int = 192) -> Image.Image:
    """A small copy for tables (enlarged with visible pixels when the image is tiny)."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else _pil(to_display(image, data_range=data_range))
    picture = _enlarge(picture.convert("RGB"), min_side=min(MIN_DISPLAY_SIDE, max_side))
    picture = picture.copy()
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def data_uri(png: bytes, *, media_type: str = "image/png") -> str:
    """Inline a picture into HTML (``<img src="data:...">``): the report needs no other file."""
    return f"data:{media_type};base64,{base64.b64encode(png).decode('ascii')}"


def error_curve_svg(
    series: dict[str, Sequence[float | None]],
    *,
    labels: Sequence[str] = (),
    marker: int | None = None,
    threshold: float | None = None,
    y_label: str = "error",
    width: int = 720,
    height: int = 260,
) -> str:
    """An inline SVG line chart of error against operator index, log-scaled (errors span decades).

    ``series`` maps a legend name to one value per operator: None is not drawn (not measured),
    NaN/inf at the top (the worst), zero at the floor; ``marker`` draws a vertical line at an index (the first divergent operator),
    ``threshold`` a dashed horizontal line. ``labels`` become tooltips on the points.
    """
    import html
    import math

    colours = ("#c0392b", "#2471a3", "#7d3c98", "#239b56")
    left, right, top, bottom = 62, 16, 14, 34
    values = [float(v) for data in series.values() for v in data if v is not None and math.isfinite(float(v)) and v > 0]
    if threshold is not None and threshold > 0:
        values.append(threshold)
    low = math.floor(math.log10(min(values))) if values else -6
    high = math.ceil(math.log10(max(values))) if values else 0
    high = max(high, low + 1)
    count = max((len(data) for data in series.values()), default=1)

    def x_of(index: float) -> float:
        return left + (width - left - right) * (index / max(1, count - 1))

    def y_of(value: float | None) -> float:
        if value is None or not math.isfinite(float(value)):
            return top  # NaN / inf: the worst, drawn at the top
        level = math.log10(max(float(value), 10.0 ** low))
        return top + (height - top - bottom) * (1 - (level - low) / (high - low))

    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="curve" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(y_label)} per operator">'),
        (f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" '
         'fill="#fafafa" stroke="#ccc"/>'),
    ]
    for exponent in range(low, high + 1):
        y = y_of(10.0 ** exponent)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">1e{exponent}</text>')
    if threshold is not None and threshold > 0:
        y = y_of(threshold)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555" '
                     'stroke-dasharray="5,4"><title>threshold</title></line>')
    if marker is not None:
        x = x_of(marker)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" stroke="#e67e22" '
                     f'stroke-width="2"><title>first divergent: #{marker}</title></line>')
    for (name, data), colour in zip(series.items(), colours):
        segment: list[str] = []
        for i, v in enumerate([*data, None]):  # None: not measured there, so the line breaks
            if v is not None:
                segment.append(f"{x_of(i):.1f},{y_of(v):.1f}")
            elif segment:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{" ".join(segment)}"/>')
                segment = []
        for i, v in enumerate(data):
            if v is None:
                continue
            tip = html.escape(f"#{i} {labels[i] if i < len(labels) else ''}: {name} = {v}")
            parts.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="2.2" fill="{colour}"><title>{tip}</title></circle>')
    legend_x = left + 8
    for (name, _), colour in zip(series.items(), colours):
        parts.append(f'<rect x="{legend_x}" y="{top + 6}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{top + 15}" font-size="11">{html.escape(name)}</text>')
        legend_x += 24 + 7 * len(name)
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" text-anchor="middle" '
                 'font-size="11">operator index (topological order)</text>')
    parts.append(f'<text x="12" y="{(top + height - bottom) / 2:.0f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(top + height - bottom) / 2:.0f})">{html.escape(y_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
