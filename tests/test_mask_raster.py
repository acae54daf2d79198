"""addon/mask_raster.py: Blender's mask-space mapping, filling, holes, invert/alpha and layer blending, without bpy."""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from importrules import imported_modules, relative_imports

MODULE = Path(__file__).resolve().parent.parent / "addon" / "mask_raster.py"


def _load_module() -> types.ModuleType:
    """Load the file alone: importing the `addon` package would import bpy into the pytest process."""
    spec = importlib.util.spec_from_file_location("regia_mask_raster", MODULE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the classes
    spec.loader.exec_module(module)
    return module


_mr = _load_module()
MaskLayer, Spline, SplinePoint = _mr.MaskLayer, _mr.Spline, _mr.SplinePoint
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
    return Spline([corner(x0, y0), corner(x1, y0), corner(x1, y1), corner(x0, y1)])


def circle(cx: float, cy: float, r: float) -> Spline:
    """Four points at 0/90/180/270 degrees with tangent handles kappa*r long (counter-clockwise)."""
    pts = []
    for ang in (0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi):
        c, s = np.cos(ang), np.sin(ang)
        co = (cx + r * c, cy + r * s)
        tangent = (-s * KAPPA * r, c * KAPPA * r)
        pts.append(SplinePoint(co, (co[0] - tangent[0], co[1] - tangent[1]), (co[0] + tangent[0], co[1] + tangent[1])))
    return Spline(pts)


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


def test_partial_pixels_are_antialiased() -> None:
    # x 0.4025*200 = 80.5: column 80 is half covered.
    mask = rasterise_layer(MaskLayer([box(0.4025, 0.4, 0.6, 0.6)]), 200, 100)
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
    outer, inner = box(0.2, 0.2, 0.8, 0.8), box(0.4, 0.4, 0.6, 0.6)
    holed = rasterise_layer(MaskLayer([outer, inner], fill_holes=True), 100, 100)
    assert holed[50, 50] == 0.0 and holed[25, 25] == 1.0
    assert holed.sum() == 60 * 60 - 20 * 20
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
    assert rasterise_layer(MaskLayer([], invert=True), 8, 4).min() == 1.0


def test_open_or_unfilled_splines_are_not_filled() -> None:
    open_spline = box(0.2, 0.2, 0.8, 0.8)
    open_spline.cyclic = False
    unfilled = box(0.2, 0.2, 0.8, 0.8)
    unfilled.fill = False
    assert rasterise_layer(MaskLayer([open_spline, unfilled]), 50, 50).max() == 0.0


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
        ("REPLACE", 0.5, [0, 0.5, 0.5, 0]),
        ("DIFFERENCE", 1.0, [1, 0, 1, 0]),
    ],
)
def test_blend_modes(mode: str, alpha: float, row: list[float]) -> None:
    layers = [MaskLayer([LEFT]), MaskLayer([MID], alpha=alpha, blend=mode)]
    out = rasterise_layers(layers, 4, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.tile(np.array(row, dtype=np.float32), (4, 1)))


def test_unknown_blend_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="blend"):
        rasterise_layers([MaskLayer([LEFT], blend="OVERLAY")], 4, 4)


# ---- scale and imports --------------------------------------------------------------------------------------------


def test_large_frame_shape_and_dtype() -> None:
    """2048x2048 with a few splines: the time is printed, not asserted (benchmarks live elsewhere)."""
    layer = MaskLayer([circle(0.5, 0.5, 0.4), circle(0.5, 0.5, 0.2), box(0.05, 0.05, 0.3, 0.3), circle(0.8, 0.8, 0.1)])
    start = time.perf_counter()
    mask = rasterise_layer(layer, 2048, 2048)
    print(f"rasterise_layer 2048x2048, 4 splines: {time.perf_counter() - start:.3f} s")
    assert mask.shape == (2048, 2048) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_module_imports_only_numpy_and_the_standard_library() -> None:
    assert not relative_imports(MODULE), "no relative imports: the module stands alone"
    names = imported_modules(MODULE)
    assert names - set(sys.stdlib_module_names) <= {"numpy"}, names
