"""Pictures: the heat map shows where images differ (and its scale), large maps keep their worst
pixel, the triptych has three panels, the error curve is well-formed SVG."""

from __future__ import annotations

from xml.etree import ElementTree

import numpy as np

from accuracy.report.pictures import colour_map, error_curve_svg, heat_map, max_pool, thumbnail, triptych
from tests.image_data import landscape


def test_heat_map_is_bright_where_the_difference_is():
    difference = np.zeros((40, 40))
    difference[10:20, 25:35] = 7.0
    picture = np.asarray(heat_map(difference, colour_bar=False, min_side=40))
    assert picture.shape == (40, 40, 3)
    assert picture[15, 30].sum() > 600 and picture[2, 2].sum() < 20  # bright patch on black
    with_bar = heat_map(difference, min_side=40)
    assert with_bar.width > 40 + 30  # room for the bar and its labels


def test_large_maps_keep_their_worst_pixel_and_nan_is_magenta():
    difference = np.zeros((600, 600))
    difference[333, 444] = 9.0
    difference[10, 10] = np.nan
    pooled = max_pool(difference, 4)
    assert pooled.shape == (150, 150) and np.nanmax(pooled) == 9.0 and np.isnan(pooled[2, 2])
    picture = np.asarray(heat_map(difference, colour_bar=False, max_side=150))
    assert picture.shape[:2] == (150, 150)
    assert tuple(colour_map(np.array([np.nan]))[0]) == (255, 0, 255)


def test_triptych_has_three_panels_side_by_side():
    image = landscape(32)
    other = image.copy()
    other[:8] = 0
    picture = triptych(image, other, data_range=255)
    assert picture.width > 3 * 160 and picture.height < 160 + 60


def test_thumbnail_enlarges_tiny_and_shrinks_large_images():
    assert max(thumbnail(landscape(16)).size) >= 128
    assert max(thumbnail(landscape(400), max_side=192).size) == 192
    assert thumbnail(landscape(64, bits=16)).mode == "RGB"


def test_error_curve_is_valid_svg_with_one_point_per_operator():
    values = [1e-7 * 10 ** (i / 4) for i in range(12)]
    svg = error_curve_svg({"accumulated": values, "local": [1e-8] * 12}, labels=[f"n{i}" for i in range(12)],
                          marker=5, threshold=1e-4, y_label="1 − cosine")
    root = ElementTree.fromstring(svg)
    circles = root.findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 24
    heights = [float(c.get("cy")) for c in circles[:12]]
    assert heights == sorted(heights, reverse=True)  # growing error climbs the chart


def test_error_curve_breaks_where_nothing_was_measured_and_puts_nan_on_top():
    svg = error_curve_svg({"local": [1e-6, None, None, 1e-5, float("nan"), 1e-6]})
    root = ElementTree.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{namespace}polyline")) == 2
    circles = root.findall(f"{namespace}circle")
    assert len(circles) == 4
    assert float(circles[2].get("cy")) == min(float(c.get("cy")) for c in circles)  # NaN: the worst
