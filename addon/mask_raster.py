"""Rasterise Blender mask layers into region masks, as pure numpy.

Blender has no Python-side mask rasteriser (only the compositor's Mask node, which needs a render), so the add-on
copies MaskLayer/MaskSpline/MaskSplinePoint fields into the plain dataclasses below and rasterises them here. Keeping
this module free of bpy lets it be tested without Blender.

Conventions: mask space is Blender's (a square spanning the image's longer side, centred, y up); the arrays returned
are numpy images (row 0 is the TOP row), float32 in [0, 1]. Feather is not handled yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Vec2 = tuple[float, float]

# Pixel coordinates are snapped to this grid before filling, so the float noise of the mapping (0.6 - 0.5 is not
# exactly 0.1) cannot leak 1e-14 coverage into a pixel that a box edge only touches.
_SNAP_DECIMALS = 6


@dataclass
class SplinePoint:
    co: Vec2
    handle_left: Vec2
    handle_right: Vec2
    weight: float = 1.0


@dataclass
class Spline:
    points: list[SplinePoint]
    cyclic: bool = True
    fill: bool = True


@dataclass
class MaskLayer:
    splines: list[Spline] = field(default_factory=list)
    alpha: float = 1.0
    invert: bool = False
    blend: str = "MERGE_ADD"
    fill_holes: bool = False
    fill_overlap: bool = False


def bezier_polyline(spline: Spline, segments_per_curve: int = 16) -> np.ndarray:
    """Flatten the spline's cubic Beziers to a polyline (N, 2) in mask space; filling works on polygons."""
    pts = spline.points
    n = len(pts)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    co = np.array([p.co for p in pts], dtype=np.float64)
    if n == 1:
        return co.copy()
    hl = np.array([p.handle_left for p in pts], dtype=np.float64)
    hr = np.array([p.handle_right for p in pts], dtype=np.float64)
    idx = np.arange(n if spline.cyclic else n - 1)
    nxt = (idx + 1) % n
    p0, c1, c2, p1 = co[idx], hr[idx], hl[nxt], co[nxt]
    t = np.arange(segments_per_curve, dtype=np.float64) / segments_per_curve
    t = t[None, :, None]
    u = 1.0 - t
    curve = (
        (u**3) * p0[:, None] + 3 * (u**2) * t * c1[:, None] + 3 * u * (t**2) * c2[:, None] + (t**3) * p1[:, None]
    ).reshape(-1, 2)
    if not spline.cyclic:
        curve = np.vstack([curve, co[-1:]])
    return curve


def to_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Mask space -> continuous pixel coordinates (x right, y down from the top edge), as Blender maps it.

    Pixel (col, row) spans [col, col+1) x [row, row+1); its centre is (col + 0.5, row + 0.5).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    if width >= height:
        px = x * width
        py = height / 2 + (y - 0.5) * width
    else:
        py = y * height
        px = width / 2 + (x - 0.5) * height
    return np.stack([px, height - py], axis=1)


def _crossings(poly: np.ndarray, n_rows: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each sample row (centre y = (r + 0.5) / s) crosses the polygon's edges: (rows, xs).

    Half-open edges (ymin <= y < ymax) make every row cross a closed polygon an even number of times, vertices
    included. The work scales with the number of crossings, not with rows x edges.
    """
    s = supersample
    a = poly
    b = np.roll(poly, -1, axis=0)
    y0, y1 = a[:, 1], b[:, 1]
    ymin, ymax = np.minimum(y0, y1), np.maximum(y0, y1)
    r_lo = np.clip(np.ceil(ymin * s - 0.5), 0, n_rows).astype(np.int64)
    r_hi = np.clip(np.ceil(ymax * s - 0.5), 0, n_rows).astype(np.int64)
    counts = np.maximum(r_hi - r_lo, 0)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    edge = np.repeat(np.arange(len(a)), counts)
    starts = np.cumsum(counts) - counts
    rows = r_lo[edge] + (np.arange(total) - starts[edge])
    yc = (rows + 0.5) / s
    slope = (b[edge, 0] - a[edge, 0]) / (y1[edge] - y0[edge])
    xs = a[edge, 0] + (yc - y0[edge]) * slope
    return rows, xs


def _even_odd_spans(rows: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair sorted crossings within each row into inside spans: (rows, x_start, x_end)."""
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    return rows[0::2], xs[0::2], xs[1::2]


def _union_spans(spans: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge spans of several splines so overlaps count once (no fill_holes): a running +1/-1 count per row."""
    rows = np.concatenate([np.concatenate([r, r]) for r, _, _ in spans])
    xs = np.concatenate([np.concatenate([a, b]) for _, a, b in spans])
    delta = np.concatenate([np.concatenate([np.ones(len(a)), -np.ones(len(a))]) for _, a, _ in spans])
    order = np.lexsort((-delta, xs, rows))  # at equal x, starts before ends: touching spans merge
    rows, xs, delta = rows[order], xs[order], delta[order]
    after = np.cumsum(delta)  # every row sums to 0, so one running sum serves all rows
    before = after - delta
    opens = (before == 0) & (after > 0)
    closes = (before > 0) & (after == 0)
    return rows[opens], xs[opens], xs[closes]


def _coverage(rows: np.ndarray, x0: np.ndarray, x1: np.ndarray, width: int, height: int, s: int) -> np.ndarray:
    """Accumulate spans into pixels: exact horizontal coverage, s sample rows per pixel row.

    Each span adds a ramp (1 - frac at floor(x0), 1 after) and removes the same from x1; one cumsum per row then
    gives per-pixel coverage, so no Python loop touches pixels.
    """
    stride = width + 2
    acc = np.zeros(height * stride, dtype=np.float64)
    if len(rows):
        base = (rows // s) * stride
        w = 1.0 / s
        for xv, sign in ((np.clip(x0, 0, width), w), (np.clip(x1, 0, width), -w)):
            col = np.floor(xv).astype(np.int64)
            frac = xv - col
            acc += np.bincount(base + col, weights=sign * (1.0 - frac), minlength=acc.size)[: acc.size]
            acc += np.bincount(base + col + 1, weights=sign * frac, minlength=acc.size)[: acc.size]
    cov = np.cumsum(acc.reshape(height, stride), axis=1)[:, :width]
    return np.clip(cov, 0.0, 1.0)


def rasterise_layer(layer: MaskLayer, width: int, height: int, supersample: int = 4) -> np.ndarray:
    """One layer's mask (H, W) float32 in [0, 1]: filled cyclic splines, holes per fill_holes, invert, alpha.

    As Blender's compositor Mask node does it (checked on 5.0.1): fill_holes=True combines a layer's splines
    by even-odd, so a spline inside another cuts a hole; fill_holes=False unions them, whatever fill_overlap
    says. Non-cyclic or unfilled splines contribute nothing (they need feather).
    """
    n_rows = height * supersample
    per_spline: list[tuple[np.ndarray, np.ndarray]] = []
    for spline in layer.splines:
        if not (spline.cyclic and spline.fill) or len(spline.points) < 2:
            continue
        poly = np.round(to_pixels(bezier_polyline(spline), width, height), _SNAP_DECIMALS)
        rows, xs = _crossings(poly, n_rows, supersample)
        if len(rows):
            per_spline.append((rows, xs))
    if not per_spline:
        spans = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    elif layer.fill_holes:
        spans = _even_odd_spans(np.concatenate([r for r, _ in per_spline]), np.concatenate([x for _, x in per_spline]))
    else:
        spans = _union_spans([_even_odd_spans(r, x) for r, x in per_spline])
    mask = _coverage(*spans, width, height, supersample)
    if layer.invert:
        mask = 1.0 - mask
    return (mask * layer.alpha).astype(np.float32)


def _blend(a: np.ndarray, b: np.ndarray, mode: str) -> np.ndarray:
    """Blender's mask layer blend modes, result clamped to [0, 1]."""
    if mode in ("MERGE_ADD", "ADD"):
        out = a + b
    elif mode in ("MERGE_SUBTRACT", "SUBTRACT"):
        out = a - b
    elif mode == "LIGHTEN":
        out = np.maximum(a, b)
    elif mode == "DARKEN":
        out = np.minimum(a, b)
    elif mode == "MUL":
        out = a * b
    elif mode == "REPLACE":
        out = b
    elif mode == "DIFFERENCE":
        out = np.abs(a - b)
    else:
        raise ValueError(f"unknown mask blend mode {mode!r}")
    return np.clip(out, 0.0, 1.0)


def rasterise_layers(layers: Sequence[MaskLayer], width: int, height: int, supersample: int = 4) -> np.ndarray:
    """All layers (H, W) float32, combined in order from an empty mask with each layer's blend mode."""
    out = np.zeros((height, width), dtype=np.float32)
    for layer in layers:
        out = _blend(out, rasterise_layer(layer, width, height, supersample), layer.blend).astype(np.float32)
    return out
