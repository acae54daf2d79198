"""addon/mask_raster.py against Blender itself: the compositor's Mask node (bpy 5.0) renders each case, and the
rasteriser, fed the mask data as bpy reads it back, must agree.

One bpy child builds every case, renders it, and writes the render (as .npy, row 0 = top) and the mask's data (as
JSON) per case; building all cases in one process keeps Blender's start-up to once.
"""

from __future__ import annotations

import json
import math
from typing import Any

import bpykit
import numpy as np
import pytest
from regia_package import addon_module

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

CHILD = r"""
import json
import sys
from pathlib import Path

import bpy
import numpy as np

cases = json.loads(Path(sys.argv[1]).read_text())
out_dir = Path(sys.argv[2])
scene = bpy.context.scene
for obj in list(bpy.data.objects):
    bpy.data.objects.remove(obj)
scene.render.engine = "BLENDER_WORKBENCH"
scene.render.resolution_percentage = 100
# EXR keeps the node's linear values; an 8-bit PNG would go through the view transform.
scene.render.image_settings.file_format = "OPEN_EXR"
scene.render.image_settings.color_depth = "32"
tree = bpy.data.node_groups.new("Oracle", "CompositorNodeTree")
scene.compositing_node_group = tree
node = tree.nodes.new("CompositorNodeMask")
tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
tree.links.new(node.outputs["Mask"], tree.nodes.new("NodeGroupOutput").inputs[0])

LAYER_ATTRS = {"alpha": "alpha", "blend": "blend", "invert": "invert", "falloff": "falloff",
               "fill_holes": "use_fill_holes", "fill_overlap": "use_fill_overlap"}


def build(spec):
    mask = bpy.data.masks.new(name=spec["name"])
    for lspec in spec["layers"]:
        layer = mask.layers.new(name="layer")
        for key, attr in LAYER_ATTRS.items():
            if key in lspec:
                setattr(layer, attr, lspec[key])
        for sspec in lspec["splines"]:
            spline = layer.splines.new()
            spline.points.add(len(sspec["points"]) - 1)
            spline.use_cyclic = sspec.get("cyclic", True)
            spline.use_fill = sspec.get("fill", True)
            for key in ("offset_mode", "weight_interpolation"):
                if key in sspec:
                    setattr(spline, key, sspec[key])
            for point, pspec in zip(spline.points, sspec["points"]):
                point.handle_type = "FREE"  # Blender leaves FREE handles where they are set
                point.co = pspec["co"]
                point.handle_left = pspec["handle_left"]
                point.handle_right = pspec["handle_right"]
                point.weight = pspec["weight"]
    return mask


def dump(mask):
    layers = []
    for layer in mask.layers:
        ldata = {key: getattr(layer, attr) for key, attr in LAYER_ATTRS.items()}
        ldata["splines"] = [
            {
                "cyclic": s.use_cyclic, "fill": s.use_fill, "offset_mode": s.offset_mode,
                "weight_interpolation": s.weight_interpolation,
                "points": [
                    {"co": list(p.co), "handle_left": list(p.handle_left), "handle_right": list(p.handle_right),
                     "weight": p.weight, "feather_points": [[f.u, f.weight] for f in p.feather_points]}
                    for p in s.points
                ],
            }
            for s in layer.splines
        ]
        layers.append(ldata)
    return layers


# What a fresh layer, spline and point look like, so the dataclasses' defaults can be held to them.
fresh = bpy.data.masks.new(name="defaults").layers.new(name="layer")
spline = fresh.splines.new()
print("REGIA-RESULT " + json.dumps({
    "weight": spline.points[0].weight, "offset_mode": spline.offset_mode,
    "weight_interpolation": spline.weight_interpolation, "falloff": fresh.falloff,
}))

for spec in cases:
    mask = build(spec)
    node.mask = mask
    node.inputs["Feather"].default_value = spec["feather"]
    scene.render.resolution_x, scene.render.resolution_y = spec["width"], spec["height"]
    bpy.ops.render.render()
    exr = out_dir / (spec["name"] + ".exr")
    bpy.data.images["Render Result"].save_render(str(exr))
    image = bpy.data.images.load(str(exr))
    width, height = image.size
    pixels = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    np.save(out_dir / (spec["name"] + ".npy"), pixels.reshape(height, width, 4)[::-1, :, 0].copy())
    (out_dir / (spec["name"] + ".json")).write_text(json.dumps(dump(mask)))
print("REGIA-OK")
"""


_mr = addon_module("mask_raster")  # as Blender imports it; the `regia` package imports no bpy
KAPPA = 0.5523  # handle length of a quarter-circle Bezier, in radii


# ---- case builders (plain JSON for the child) ----------------------------------------------------------------------


def pt(
    co: tuple[float, float],
    left: tuple[float, float] | None = None,
    right: tuple[float, float] | None = None,
    weight: float = 0.0,
) -> dict[str, Any]:
    return {"co": co, "handle_left": left or co, "handle_right": right or co, "weight": weight}


def box(x0: float, y0: float, x1: float, y1: float, cw: bool = True, weight: float = 0.0) -> dict[str, Any]:
    """Corners with handles on the points (straight sides); clockwise in mask space (y up) unless cw=False."""
    corners = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
    return {"points": [pt(c, weight=weight) for c in (corners if cw else corners[::-1])]}


def circle(
    cx: float, cy: float, r: float, cw: bool = True, weights: tuple[float, ...] = (0.0,) * 4, squash: float = 1.0
) -> dict[str, Any]:
    """Four points with tangent handles; squash < 1 flattens it vertically (an ellipse)."""
    points = []
    angles = [0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi]
    for ang, weight in zip(angles[::-1] if cw else angles, weights, strict=True):
        c, s = math.cos(ang), math.sin(ang)
        co = (cx + r * c, cy + r * s * squash)
        tx, ty = -s * KAPPA * r, c * KAPPA * r * squash
        if cw:
            tx, ty = -tx, -ty
        points.append(pt(co, (co[0] - tx, co[1] - ty), (co[0] + tx, co[1] + ty), weight))
    return {"points": points}


def blob(cw: bool = True) -> dict[str, Any]:
    """An irregular curved shape: uneven handle lengths and a cusp-free S-bend."""
    points = [
        pt((0.55, 0.15), (0.45, 0.12), (0.70, 0.19)),
        pt((0.85, 0.35), (0.83, 0.22), (0.88, 0.50)),
        pt((0.70, 0.60), (0.78, 0.55), (0.62, 0.66)),
        pt((0.58, 0.45), (0.62, 0.52), (0.50, 0.35)),
    ]
    if not cw:  # reverse the order, and with it each point's in and out handles
        points = [{**p, "handle_left": p["handle_right"], "handle_right": p["handle_left"]} for p in points[::-1]]
    return {"points": points}


def layer(splines: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"splines": splines, **fields}


def case(name: str, width: int, height: int, layers: list[dict[str, Any]], feather: bool = False) -> dict[str, Any]:
    return {"name": name, "width": width, "height": height, "layers": layers, "feather": feather}


def _with(spline: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**spline, **fields}


FEATHERED = [
    circle(0.35, 0.4, 0.2, weights=(0.02, 0.05, 0.08, 0.03)),  # clockwise: the feather shows outside
    _with(box(0.62, 0.55, 0.9, 0.85, weight=0.04), offset_mode="SMOOTH"),
    circle(0.75, 0.22, 0.12, cw=False, weights=(0.05,) * 4),  # counter-clockwise: the feather hides in the fill
    _with(circle(0.2, 0.82, 0.1, weights=(0.01, 0.06, 0.02, 0.04)), offset_mode="SMOOTH"),
    _with(circle(0.45, 0.12, 0.08, weights=(0.0, 0.05, 0.0, 0.02)), weight_interpolation="LINEAR"),
]

# Thresholds. Measured on bpy 5.0.1 (x86_64): IoU >= 0.997 in every case (the misses are pixels at exactly 0.5 that
# tip either way), mean abs error <= 1e-5 over the frame and over the soft (feather and AA) pixels alike; a handful
# of corner pixels differ by up to 0.07 (a pixel centre on the diagonal between two quads). The bounds leave a wide
# margin for other platforms' float rounding while still failing on any real change of shape or profile.
MIN_IOU = 0.98
MAX_MAE = 1e-3
MAX_SOFT_MAE = 5e-3

HOLED = [circle(0.5, 0.5, 0.4), box(0.35, 0.35, 0.6, 0.6, cw=False), circle(0.47, 0.47, 0.05)]
MIXED = [circle(0.3, 0.5, 0.25, squash=0.6), blob(cw=False), box(0.05, 0.3, 0.2, 0.45)]
CROSSING = [circle(0.4, 0.5, 0.25), circle(0.6, 0.5, 0.25, cw=False)]
# Unfilled splines are strokes: an open one (capped ends) and a closed one, with uneven feather.
STROKES = [
    {
        "points": [
            pt((0.2, 0.3), weight=0.03),
            pt((0.5, 0.45), (0.4, 0.3), (0.6, 0.6), weight=0.06),
            pt((0.8, 0.3), weight=0.01),
        ],
        "cyclic": False,
        "fill": False,
    },
    _with(circle(0.5, 0.7, 0.15, weights=(0.02, 0.04, 0.02, 0.0)), fill=False),
]
RINGED = [circle(0.5, 0.5, 0.4, weights=(0.03,) * 4), circle(0.5, 0.5, 0.2, cw=False, weights=(0.06,) * 4)]
CASES: list[dict[str, Any]] = [
    case(
        "boxes",
        128,
        128,
        [layer([box(0.1, 0.1, 0.45, 0.4), box(0.55, 0.2, 0.9, 0.8, cw=False), box(0.2, 0.55, 0.5, 0.9)])],
    ),
    case("curves", 160, 160, [layer([circle(0.3, 0.35, 0.2), blob(), circle(0.3, 0.8, 0.15, cw=False)])]),
    case("hole", 160, 160, [layer(HOLED, fill_holes=True)]),
    # fill_overlap off: Blender unions crossing splines. On, its scanfill runs a self-intersection pass that can
    # drop parts of the fill where splines of opposite winding cross a third (seen on 5.0.1); two still union.
    case("overlap", 160, 160, [layer([*CROSSING, blob()], fill_holes=False, fill_overlap=False)]),
    case("overlap_on", 160, 160, [layer(CROSSING, fill_holes=False, fill_overlap=True)]),
    case("wide", 200, 120, [layer(MIXED)]),
    case("tall", 120, 200, [layer(MIXED)]),
    case("invert", 160, 120, [layer([circle(0.5, 0.5, 0.3), box(0.1, 0.1, 0.3, 0.3, cw=False)], invert=True)]),
    case("feather_off", 160, 160, [layer(FEATHERED)], feather=False),
    case("feather", 160, 160, [layer(FEATHERED)], feather=True),
    case("feather_wide", 200, 120, [layer(FEATHERED, falloff="LINEAR")], feather=True),
    case("feather_hole", 160, 160, [layer(RINGED, fill_holes=True, falloff="SPHERE")], feather=True),
    case("strokes", 200, 160, [layer(STROKES)], feather=True),
    case("strokes_tall", 130, 210, [layer(STROKES, falloff="LINEAR")], feather=True),
    case(
        "large",
        640,
        480,
        [layer(FEATHERED), layer([blob(), circle(0.3, 0.7, 0.2)], blend="MERGE_SUBTRACT", alpha=0.5)],
        feather=True,
    ),
    case(
        "falloffs",
        240,
        160,
        [
            layer([circle(0.15 + 0.14 * i, 0.5, 0.05, weights=(0.04,) * 4)], falloff=falloff)
            for i, falloff in enumerate(_mr.FALLOFFS)
        ],
        feather=True,
    ),
    case(
        "layers",
        160,
        160,
        [
            layer([circle(0.4, 0.45, 0.3, weights=(0.05,) * 4)]),
            layer([box(0.3, 0.3, 0.8, 0.6, weight=0.02)], blend="MERGE_SUBTRACT", alpha=0.4),
            layer([circle(0.35, 0.35, 0.1)], blend="REPLACE", alpha=0.3, invert=True),
            layer([box(0.5, 0.5, 0.9, 0.9, weight=0.03)], blend="MUL", alpha=0.5, invert=True),
            layer([box(0.15, 0.6, 0.3, 0.9)], blend="DIFFERENCE"),
        ],
        feather=True,
    ),
]
NAMES = [c["name"] for c in CASES]


def layers_from(dump: list[dict[str, Any]]) -> list[Any]:
    """The rasteriser's dataclasses from the data as bpy read it back."""
    layers = []
    for ldata in dump:
        splines = [
            _mr.Spline(
                points=[
                    _mr.SplinePoint(
                        co=tuple(p["co"]),
                        handle_left=tuple(p["handle_left"]),
                        handle_right=tuple(p["handle_right"]),
                        weight=p["weight"],
                        feather_points=[_mr.FeatherPoint(u, w) for u, w in p["feather_points"]],
                    )
                    for p in s["points"]
                ],
                cyclic=s["cyclic"],
                fill=s["fill"],
                offset_mode=s["offset_mode"],
                weight_interpolation=s["weight_interpolation"],
            )
            for s in ldata["splines"]
        ]
        fields = {key: ldata[key] for key in ("alpha", "invert", "blend", "fill_holes", "fill_overlap", "falloff")}
        layers.append(_mr.MaskLayer(splines=splines, **fields))
    return layers


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bpykit.require_bpy()
    tmp = tmp_path_factory.mktemp("mask_oracle")
    (tmp / "cases.json").write_text(json.dumps(CASES))
    out = tmp / "out"
    out.mkdir()
    (defaults,) = bpykit.results(bpykit.run_bpy(CHILD, tmp, str(tmp / "cases.json"), str(out), timeout=120))
    renders = {name: (np.load(out / f"{name}.npy"), json.loads((out / f"{name}.json").read_text())) for name in NAMES}
    return {"defaults": defaults, "renders": renders}


def test_dataclass_defaults_are_blenders(oracle: dict[str, Any]) -> None:
    defaults = oracle["defaults"]
    point = _mr.SplinePoint((0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    spline = _mr.Spline([point])
    assert point.weight == defaults["weight"] == 0.0
    assert spline.offset_mode == defaults["offset_mode"]
    assert spline.weight_interpolation == defaults["weight_interpolation"]
    assert _mr.MaskLayer().falloff == defaults["falloff"]


@pytest.mark.parametrize("spec", CASES, ids=NAMES)
def test_matches_blenders_mask_node(oracle: dict[str, Any], spec: dict[str, Any]) -> None:
    ref, dump = oracle["renders"][spec["name"]]
    assert ref.shape == (spec["height"], spec["width"])
    assert 0.02 < (ref > 0.5).mean() < 0.98, "the case must cover part of the frame to mean anything"
    got = _mr.rasterise_layers(layers_from(dump), spec["width"], spec["height"], feather=spec["feather"])
    err = np.abs(got.astype(np.float64) - ref)
    soft = (ref > 0.02) & (ref < 0.98)
    print(
        f"{spec['name']}: IoU {iou(got, ref):.4f}, mean abs error {err.mean():.1e} (max {err.max():.3f}),"
        f" over the {soft.sum()} soft pixels {err[soft].mean():.1e}"
    )
    assert iou(got, ref) >= MIN_IOU
    assert err.mean() <= MAX_MAE
    assert err[soft].mean() <= MAX_SOFT_MAE


def test_feather_switch_changes_blenders_render(oracle: dict[str, Any]) -> None:
    """The feather cases must really be feathered, or their agreement would prove nothing about feather."""
    soft, _ = oracle["renders"]["feather"]
    hard, _ = oracle["renders"]["feather_off"]
    band = (soft > 0.02) & (soft < 0.98)
    assert band.sum() > 3 * (((hard > 0.02) & (hard < 0.98)).sum())
