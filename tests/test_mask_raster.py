"""addon/mask_raster.py: Blender's mask-space mapping, filling, holes, feather, invert/alpha and blending, without bpy.

Expected values come from Blender's rasteriser (mask_rasterize.cc) and were checked against the compositor's Mask
node in bpy 5.0.1; tests/test_mask_oracle.py compares whole renders.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from importrules import imported_modules, relative_imports
from regia_package import addon_module

ADDON = Path(__file__).resolve().parent.parent / "addon"
# The rasteriser's modules: mask_raster.py (the public API) and the modules it is split into.
MASK_MODULES = ("mask_curves", "mask_fill", "mask_raster")

# Imported as Blender would (`regia.addon.mask_raster`): the `regia` package's __init__ files import no bpy.
_mr = addon_module("mask_raster")
MaskLayer, Spline, SplinePoint, FeatherPoint = _mr.MaskLayer, _mr.Spline, _mr.SplinePoint, _mr.FeatherPoint
bezier_polyline, rasterise_layer, rasterise_layers, to_pixels = (
    _mr.bezier_polyline,
    _mr.rasterise_layer,
    _mr.rasterise_layers,
    _mr.to_pixels,
)
KAPPA = 0.5523


def corner(x: float, y: float) -> SplinePoint:
    """A vector point: handles on the point itself, so the segments are straight."""
    return SplinePoint((x, y), (x, y), (x, y))


def box(x0: float, y0: float, x1: float, y1: float) -> Spline:
    """Counter-clockwise (y up): any feather or AA band falls inside the fill, so the edge stays hard."""
    return Spline([corner(x0, y0), corner(x1, y0), corner(x1, y1), corner(x0, y1)])


def cw_box(x0: float, y0: float, x1: float, y1: float, weight: float = 0.0) -> Spline:
    """Clockwise (y up): the feather (and Blender's one-pixel AA band) shows outside."""
    corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
    return Spline([SplinePoint(c, c, c, weight) for c in corners])


def circle(cx: float, cy: float, r: float, cw: bool = False, weight: float = 0.0) -> Spline:
    """Four points at 0/90/180/270 degrees with tangent handles kappa*r long (counter-clockwise unless cw)."""
    pts = []
    for ang in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi):
        c, s = np.cos(ang), np.sin(ang)
        co = (cx + r * c, cy + r * s)
        tangent = (-s * KAPPA * r, c * KAPPA * r)
        pts.append(
            SplinePoint(co, (co[0] - tangent[0], co[1] - tangent[1]), (co[0] + tangent[0], co[1] + tangent[1]), weight)
        )
    if cw:  # reverse the order, and with it each point's in and out handles
        pts = [SplinePoint(p.co, p.handle_right, p.handle_left, p.weight) for p in pts[::-1]]
    return Spline(pts)


def smoothstep(v: float) -> float:
    return v * v * (3 - 2 * v)


def expected_box(width: int, height: int, cols: tuple[int, int], rows_top: tuple[int, int]) -> np.ndarray:
    out = np.zeros((height, width), dtype=np.float32)
    out[rows_top[0] : rows_top[1] + 1, cols[0] : cols[1] + 1] = 1.0
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / (a | b).sum())


# ---- mapping --------------------------------------------------------------------------------------------------


def test_to_pixels_matches_blenders_measured_example() -> None:
    # 200x100: x 0.4..0.6 -> 80..120; y 0.4..0.6 -> 30..70 from the bottom -> 30..70 from the top (symmetric).
    px = to_pixels(np.array([[0.4, 0.4], [0.6, 0.6]]), 200, 100)
    np.testing.assert_allclose(px, [[80.0, 70.0], [120.0, 30.0]], atol=1e-9)


def test_to_pixels_non_symmetric_and_tall() -> None:
    # Wide 200x100: y = 0.5 + 0.1 -> 50 + 20 = 70 from the bottom = 30 from the top; y = 0.3 -> 10 from bottom.
    np.testing.assert_allclose(to_pixels(np.array([[0.1, 0.6], [0.0, 0.3]]), 200, 100), [[20, 30], [0, 90]], atol=1e-9)
    # Tall 100x200: px = 50 + (x - 0.5) * 200, py = y * 200 from the bottom.
    np.testing.assert_allclose(to_pixels(np.array([[0.4, 0.1], [0.5, 1.0]]), 100, 200), [[30, 180], [50, 0]], atol=1e-9)


@pytest.mark.parametrize(
    ("width", "height", "rect", "cols", "rows_top"),
    [
        (200, 100, (0.4, 0.4, 0.6, 0.6), (80, 119), (30, 69)),  # Blender's own example
        (200, 100, (0.1, 0.3, 0.3, 0.6), (20, 59), (30, 89)),  # y 10..70 from the bottom
        (100, 200, (0.4, 0.1, 0.6, 0.3), (30, 69), (140, 179)),  # tall: x 30..70, y 20..60 from the bottom
        (128, 128, (0.25, 0.5, 0.75, 1.0), (32, 95), (0, 63)),  # square, touching the top edge
        (200, 100, (0.0, 0.0, 1.0, 1.0), (0, 199), (0, 99)),  # beyond the frame vertically: clipped
    ],
)
def test_axis_aligned_box_covers_exact_pixels(
    width: int, height: int, rect: tuple[float, float, float, float], cols: tuple[int, int], rows_top: tuple[int, int]
) -> None:
    mask = rasterise_layer(MaskLayer([box(*rect)]), width, height)
    assert mask.shape == (height, width) and mask.dtype == np.float32
    expected = expected_box(width, height, cols, rows_top)
    np.testing.assert_array_equal(mask, expected)  # exact: edges on pixel boundaries leave no partial pixels
    assert iou(mask, expected) == 1.0


def test_pixels_are_sampled_at_their_centres_as_blender_does() -> None:
    # Column 80's centre is x = 80.5: in when the edge is at or left of it (0.4025 * 200 = 80.5), out when right.
    for x0, inside in ((0.4025, True), (0.402, True), (0.403, False)):
        mask = rasterise_layer(MaskLayer([box(x0, 0.4, 0.6, 0.6)]), 200, 100)
        assert mask[50, 80] == (1.0 if inside else 0.0)
        assert mask[50, 81] == 1.0 and mask[50, 79] == 0.0


def test_supersampling_antialiases_hard_edges() -> None:
    # x 0.4025*200 = 80.5: column 80 is half covered.
    mask = rasterise_layer(MaskLayer([box(0.4025, 0.4, 0.6, 0.6)]), 200, 100, supersample=4)
    assert mask[50, 80] == pytest.approx(0.5, abs=1e-6)
    assert mask[50, 81] == 1.0 and mask[50, 79] == 0.0


# ---- curves -----------------------------------------------------------------------------------------------------


def test_bezier_polyline_hits_points_and_closes() -> None:
    spline = box(0.1, 0.1, 0.9, 0.9)
    poly = bezier_polyline(spline, segments_per_curve=8)
    assert poly.shape == (32, 2)
    np.testing.assert_allclose(poly[::8], [p.co for p in spline.points])
    spline.cyclic = False
    assert bezier_polyline(spline, segments_per_curve=8).shape == (3 * 8 + 1, 2)


@pytest.mark.parametrize(("width", "height"), [(256, 256), (320, 200), (200, 320)])
def test_bezier_circle_matches_the_disk(width: int, height: int) -> None:
    cx, cy, r = 0.5, 0.5, 0.2
    mask = rasterise_layer(MaskLayer([circle(cx, cy, r)]), width, height)
    side = max(width, height)
    centre = to_pixels(np.array([[cx, cy]]), width, height)[0]
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    disk = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= (r * side) ** 2).astype(np.float32)
    assert iou(mask, disk) >= 0.98
    assert abs(mask.sum() - np.pi * (r * side) ** 2) / (np.pi * (r * side) ** 2) < 0.01


# ---- holes, invert, alpha ---------------------------------------------------------------------------------------


def test_inner_spline_is_a_hole_with_fill_holes_and_filled_without() -> None:
    outer, inner = box(0.2, 0.2, 0.8, 0.8), cw_box(0.4, 0.4, 0.6, 0.6)  # opposite windings: both edges hard
    holed = rasterise_layer(MaskLayer([outer, inner], fill_holes=True), 100, 100)
    assert holed[50, 50] == 0.0 and holed[25, 25] == 1.0
    assert holed.sum() == 60 * 60 - 20 * 20
    # Wound like the outer one, the hole's one-pixel AA band faces into the hole (so Blender renders it).
    same = rasterise_layer(MaskLayer([outer, box(0.4, 0.4, 0.6, 0.6)], fill_holes=True), 100, 100)
    assert same[50, 50] == 0.0 and same[50, 40] == pytest.approx(0.5, abs=1e-6) and same[50, 41] == 0.0
    for overlap in (False, True):  # Blender unions without fill_holes, whatever fill_overlap says
        united = rasterise_layer(MaskLayer([outer, inner], fill_overlap=overlap), 100, 100)
        np.testing.assert_array_equal(united, rasterise_layer(MaskLayer([outer]), 100, 100))


def test_overlapping_splines_xor_or_union() -> None:
    a, b = box(0.0, 0.0, 0.6, 1.0), box(0.4, 0.0, 1.0, 1.0)
    xor = rasterise_layer(MaskLayer([a, b], fill_holes=True), 100, 100)
    union = rasterise_layer(MaskLayer([a, b]), 100, 100)
    assert xor[50, 50] == 0.0 and xor[50, 10] == 1.0 and xor[50, 90] == 1.0
    assert union.min() == 1.0


def test_invert_and_alpha() -> None:
    spline = box(0.4, 0.4, 0.6, 0.6)
    plain = rasterise_layer(MaskLayer([spline]), 200, 100)
    np.testing.assert_array_equal(rasterise_layer(MaskLayer([spline], invert=True), 200, 100), 1.0 - plain)
    np.testing.assert_allclose(rasterise_layer(MaskLayer([spline], alpha=0.25), 200, 100), 0.25 * plain)
    # Blender inverts after alpha: 1 - alpha * mask (0.75 inside, 1 outside), not alpha * (1 - mask).
    both = rasterise_layer(MaskLayer([spline], invert=True, alpha=0.25), 200, 100)
    np.testing.assert_allclose(both, 1.0 - 0.25 * plain)
    assert rasterise_layer(MaskLayer([], invert=True), 8, 4).min() == 1.0


def test_open_filled_spline_is_closed_by_a_straight_edge() -> None:
    closed = rasterise_layer(MaskLayer([box(0.2, 0.2, 0.8, 0.8)]), 50, 50)
    open_spline = box(0.2, 0.2, 0.8, 0.8)
    open_spline.cyclic = False
    opened = rasterise_layer(MaskLayer([open_spline]), 50, 50)
    np.testing.assert_array_equal(opened > 0.5, closed > 0.5)
    # Blender's AA outset takes the open outline as a loop, so a corner pixel at the seam may get a little AA.
    assert np.abs(opened - closed).sum() < 0.5


def test_unfilled_spline_is_a_stroke_along_its_outline() -> None:
    unfilled = box(0.2, 0.2, 0.8, 0.8)
    unfilled.fill = False
    mask = rasterise_layer(MaskLayer([unfilled]), 50, 50)
    # The outline runs along x = 10: the centres half a pixel either side get half of the one-pixel AA band.
    assert mask[25, 9] == pytest.approx(0.5, abs=1e-6) and mask[25, 10] == pytest.approx(0.5, abs=1e-6)
    assert mask[25, 8] == 0.0 and mask[25, 11] == 0.0 and mask[25, 25] == 0.0
    # Feathered, the stroke widens on both sides: 0.1 * 50 = 5 pixels each way, LINEAR here.
    for p in unfilled.points:
        p.weight = 0.1
    wide = rasterise_layer(MaskLayer([unfilled], falloff="LINEAR"), 50, 50)
    np.testing.assert_allclose(wide[25, 5:15], [0.1, 0.3, 0.5, 0.7, 0.9, 0.9, 0.7, 0.5, 0.3, 0.1], atol=1e-5)
    assert wide[25, 4] == 0.0 and wide[25, 15] == 0.0


def test_open_stroke_ends_in_half_discs() -> None:
    line = Spline([corner(0.3, 0.5), corner(0.7, 0.5)], cyclic=False, fill=False)
    for p in line.points:
        p.weight = 0.1  # 10 pixels on 100x100
    mask = rasterise_layer(MaskLayer([line], falloff="LINEAR"), 100, 100)
    # The line is the row boundary y = 50; the cap beyond x = 70 falls off with the distance from the end point.
    for col in (74, 78):
        d = np.hypot(col + 0.5 - 70.0, 0.5)
        assert mask[49, col] == pytest.approx(1.0 - d / 10.0, abs=0.03)
    assert mask[49, 81] == 0.0 and mask[49, 50] == pytest.approx(0.95, abs=1e-5)


# ---- feather --------------------------------------------------------------------------------------------------


def test_zero_weight_leaves_blenders_one_pixel_aa_band_outside_clockwise_splines() -> None:
    # 100x100, box 30..70: the first centre outside is half a pixel out, half-way down the one-pixel band.
    mask = rasterise_layer(MaskLayer([cw_box(0.3, 0.3, 0.7, 0.7)]), 100, 100)
    assert mask[50, 29] == pytest.approx(0.5, abs=1e-6) and mask[50, 28] == 0.0 and mask[50, 30] == 1.0
    assert mask[29, 50] == pytest.approx(0.5, abs=1e-6) and mask[70, 50] == pytest.approx(0.5, abs=1e-6)
    # Counter-clockwise, the band lies inside the fill: a hard edge.
    hard = rasterise_layer(MaskLayer([box(0.3, 0.3, 0.7, 0.7)]), 100, 100)
    assert hard[50, 29] == 0.0 and hard.sum() == 40 * 40


def test_aa_band_is_one_pixel_of_the_shorter_side_on_both_axes() -> None:
    # Blender offsets by 1 / min(W, H) in its per-axis frame: on 200x100 that is 2 pixels across x, 1 across y.
    mask = rasterise_layer(MaskLayer([cw_box(0.4, 0.4, 0.6, 0.6)]), 200, 100)  # x 80..120, y 30..70
    np.testing.assert_allclose(mask[50, 77:81], [0.0, smoothstep(0.25), smoothstep(0.75), 1.0], atol=1e-6)
    np.testing.assert_allclose(mask[28:31, 100], [0.0, 0.5, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    ("falloff", "curve"),
    [
        ("LINEAR", lambda v: v),
        ("SMOOTH", smoothstep),
        ("SPHERE", lambda v: np.sqrt(2 * v - v * v)),
        ("ROOT", np.sqrt),
        ("INVERSE_SQUARE", lambda v: v * (2 - v)),
        ("SHARP", lambda v: v * v),
    ],
)
def test_feather_falls_from_the_edge_over_its_weight_shaped_by_falloff(
    falloff: str, curve: Callable[[np.ndarray], np.ndarray]
) -> None:
    # weight 0.1 of the 100-pixel frame: 10 pixels; along row 50 the left edge is x = 30, away from corners.
    layer = MaskLayer([cw_box(0.3, 0.3, 0.7, 0.7, weight=0.1)], falloff=falloff)
    mask = rasterise_layer(layer, 100, 100)
    d = 30.0 - (np.arange(20, 30) + 0.5)  # distances of columns 20..29 from the edge
    np.testing.assert_allclose(mask[50, 20:30], curve(1.0 - d / 10.0), atol=1e-5)
    assert mask[50, 19] == 0.0 and mask[50, 30:70].min() == 1.0


def test_feather_switch_off_ignores_weights() -> None:
    feathered = MaskLayer([cw_box(0.3, 0.3, 0.7, 0.7, weight=0.1)])
    plain = rasterise_layer(MaskLayer([cw_box(0.3, 0.3, 0.7, 0.7)]), 100, 100)
    np.testing.assert_array_equal(rasterise_layer(feathered, 100, 100, feather=False), plain)
    assert rasterise_layer(feathered, 100, 100).sum() > plain.sum() + 100
    np.testing.assert_array_equal(rasterise_layers([feathered], 100, 100, feather=False), plain)


def test_feather_of_a_counter_clockwise_spline_hides_inside_its_fill() -> None:
    ccw = MaskLayer([circle(0.5, 0.5, 0.25, weight=0.1)])
    np.testing.assert_array_equal(
        rasterise_layer(ccw, 100, 100), rasterise_layer(MaskLayer([circle(0.5, 0.5, 0.25)]), 100, 100)
    )
    cw = rasterise_layer(MaskLayer([circle(0.5, 0.5, 0.25, cw=True, weight=0.1)], falloff="LINEAR"), 100, 100)
    # Outside the circle (radius 25 px) the value falls over 10 px: at 5 px out, about half.
    assert cw[50, 50 + 25 + 4] == pytest.approx(1.0 - 4.5 / 10.0, abs=0.02)
    # A hole wound against its outer spline feathers into the hole.
    ring = MaskLayer([circle(0.5, 0.5, 0.4), circle(0.5, 0.5, 0.2, weight=0.05)], fill_holes=True, falloff="LINEAR")
    holed = rasterise_layer(ring, 100, 100)
    assert holed[50, 50] == 0.0 and holed[50, 50 + 20 - 3] == pytest.approx(1.0 - 2.5 / 5.0, abs=0.02)


def corner_u(frac: float) -> float:
    """The u at which a segment whose handles sit on its ends has covered `frac` of its length: such a Bezier
    runs 3u^2 - 2u^3 of the way (slow at both ends). Bisection, as it is monotonic."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if smoothstep(mid) < frac else (lo, mid)
    return lo


def test_weights_are_interpolated_along_segments() -> None:
    # The left side runs from (0.3, 0.3) (weight 0) up to (0.3, 0.7) (weight 0.2 = 20 px). Its feather width at a
    # height is the weight at that u: EASE (smoothstep of u, Blender's default) or LINEAR in u.
    def width_at(interpolation: str, row: int) -> int:
        spline = cw_box(0.3, 0.3, 0.7, 0.7)
        spline.points[1] = SplinePoint((0.3, 0.7), (0.3, 0.7), (0.3, 0.7), 0.2)
        spline.weight_interpolation = interpolation
        mask = rasterise_layer(MaskLayer([spline], falloff="LINEAR"), 100, 100)
        return int((mask[row, :30] > 0).sum())

    for row in (65, 60, 45):
        u = corner_u((100 - row - 0.5 - 30) / 40)  # the row's centre, as a fraction of the side from the bottom
        assert abs(width_at("LINEAR", row) - 20 * u) <= 1.0, row
        assert abs(width_at("EASE", row) - 20 * smoothstep(u)) <= 1.0, row
    assert width_at("LINEAR", 65) > width_at("EASE", 65) + 1  # smoothstep(u) < u below the middle


def test_feather_points_scale_the_width_inside_a_segment() -> None:
    # Both ends weigh 0.05 (5 px); a feather point at u = 0.5 with weight 3 makes the middle 15 px wide.
    spline = cw_box(0.3, 0.3, 0.7, 0.7, weight=0.05)
    spline.points[0].feather_points = [FeatherPoint(0.5, 3.0)]  # on the left side, from (0.3, 0.3) up
    mask = rasterise_layer(MaskLayer([spline], falloff="LINEAR"), 100, 100)
    assert (mask[50, :30] > 0).sum() == 15  # the middle of the left side
    assert mask[50, 30 - 8] == pytest.approx(1.0 - 7.5 / 15.0, abs=0.02)
    assert (mask[50, 70:] > 0).sum() == 5  # the right side has none
    # SMOOTH mode turns each point's left handle direction into its normal: point the left side's ends' handles
    # along that side (upwards), so both ends move left and the side moves as a whole.
    spline.points[0].handle_left, spline.points[0].handle_right = (0.3, 0.2), (0.3, 0.4)
    spline.points[1].handle_left, spline.points[1].handle_right = (0.3, 0.6), (0.3, 0.8)
    spline.offset_mode = "SMOOTH"
    smooth = rasterise_layer(MaskLayer([spline], falloff="LINEAR"), 100, 100)
    assert (smooth[50, :30] > 0).sum() == 15


def test_smooth_offset_mode_needs_handles_for_a_normal() -> None:
    # Blender's SMOOTH mode offsets each end along the normal of its left handle: a corner whose handles sit on it
    # has none, so the feather vanishes (only the AA band stays). A curve with tangent handles feathers as EVEN does.
    corners = cw_box(0.3, 0.3, 0.7, 0.7, weight=0.1)
    corners.offset_mode = "SMOOTH"
    np.testing.assert_array_equal(
        rasterise_layer(MaskLayer([corners]), 100, 100),
        rasterise_layer(MaskLayer([cw_box(0.3, 0.3, 0.7, 0.7)]), 100, 100),
    )
    even = circle(0.5, 0.5, 0.25, cw=True, weight=0.08)
    smooth = circle(0.5, 0.5, 0.25, cw=True, weight=0.08)
    smooth.offset_mode = "SMOOTH"
    a, b = (rasterise_layer(MaskLayer([sp]), 100, 100) for sp in (even, smooth))
    assert (
        np.abs(a - b).mean() < 0.01
        and a.sum() > rasterise_layer(MaskLayer([circle(0.5, 0.5, 0.25, cw=True)]), 100, 100).sum() + 300
    )


def test_feather_with_supersampling_keeps_the_fill_coverage() -> None:
    layer = MaskLayer([cw_box(0.3025, 0.3, 0.7, 0.7, weight=0.1)], falloff="LINEAR")  # left edge at x = 30.25
    coarse = rasterise_layer(layer, 100, 100)
    fine = rasterise_layer(layer, 100, 100, supersample=4)
    assert fine[50, 30] == pytest.approx(0.75, abs=1e-6)  # covered 3/4, centre inside the fill: coverage
    np.testing.assert_allclose(fine[50, :30], coarse[50, :30], atol=1e-6)  # the band outside is the same


# ---- blending -----------------------------------------------------------------------------------------------------

LEFT = box(0.0, 0.0, 0.5, 1.0)  # columns 0..1 of a 4x4
MID = box(0.25, 0.0, 0.75, 1.0)  # columns 1..2


@pytest.mark.parametrize(
    ("mode", "alpha", "row"),
    [
        ("MERGE_ADD", 1.0, [1, 1, 1, 0]),
        ("ADD", 0.5, [1, 1, 0.5, 0]),
        ("MERGE_SUBTRACT", 1.0, [1, 0, 0, 0]),
        ("SUBTRACT", 0.5, [1, 0.5, 0, 0]),
        ("LIGHTEN", 0.5, [1, 1, 0.5, 0]),
        ("DARKEN", 1.0, [0, 1, 0, 0]),
        ("MUL", 0.5, [0, 0.5, 0, 0]),
        ("REPLACE", 0.5, [0.5, 1, 0.5, 0]),  # Blender: value * (1 - alpha) + layer * alpha
        ("DIFFERENCE", 1.0, [1, 0, 1, 0]),
    ],
)
def test_blend_modes(mode: str, alpha: float, row: list[float]) -> None:
    layers = [MaskLayer([LEFT]), MaskLayer([MID], alpha=alpha, blend=mode)]
    out = rasterise_layers(layers, 4, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.tile(np.array(row, dtype=np.float32), (4, 1)))


def test_merges_of_partial_values_follow_blender() -> None:
    # MERGE_ADD is v + l * (1 - v) and MERGE_SUBTRACT v - l * v, which differ from ADD/SUBTRACT below 1.
    half = [MaskLayer([LEFT], alpha=0.5)]
    added = rasterise_layers([*half, MaskLayer([MID], alpha=0.5)], 4, 4)
    np.testing.assert_allclose(added[0], [0.5, 0.75, 0.5, 0.0])
    taken = rasterise_layers([*half, MaskLayer([MID], alpha=0.5, blend="MERGE_SUBTRACT")], 4, 4)
    np.testing.assert_allclose(taken[0], [0.5, 0.25, 0.0, 0.0])


def test_unknown_blend_mode_or_falloff_is_refused() -> None:
    with pytest.raises(ValueError, match="blend"):
        rasterise_layers([MaskLayer([LEFT], blend="OVERLAY")], 4, 4)
    with pytest.raises(ValueError, match="falloff"):
        rasterise_layer(MaskLayer([LEFT], falloff="CONSTANT"), 4, 4)


# ---- scale and imports --------------------------------------------------------------------------------------------


def test_large_frame_shape_and_dtype() -> None:
    """2048x2048 with a few splines: the time is printed, not asserted (benchmarks live elsewhere)."""
    layer = MaskLayer([circle(0.5, 0.5, 0.4), circle(0.5, 0.5, 0.2), box(0.05, 0.05, 0.3, 0.3), circle(0.8, 0.8, 0.1)])
    start = time.perf_counter()
    mask = rasterise_layer(layer, 2048, 2048)
    print(f"rasterise_layer 2048x2048, 4 splines: {time.perf_counter() - start:.3f} s")
    assert mask.shape == (2048, 2048) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_mask_modules_import_only_numpy_the_standard_library_and_each_other() -> None:
    for name in MASK_MODULES:
        path = ADDON / f"{name}.py"
        assert relative_imports(path) <= set(MASK_MODULES), f"{name}: relative imports only among the mask modules"
        names = imported_modules(path)
        assert names - set(sys.stdlib_module_names) <= {"numpy"}, (name, names)
