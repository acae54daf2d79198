"""The mask data the add-on copies out of Blender, and the curves it describes, as pure numpy.

Blender has no Python-side mask rasteriser (only the compositor's Mask node, which needs a render), so the add-on
copies MaskLayer/MaskSpline/MaskSplinePoint fields into the plain dataclasses below; mask_raster.py rasterises them.
This module holds the data and the geometry of one spline, as Blender's blenkernel evaluates it (mask_evaluate.cc,
mask_rasterize.cc): its Bezier segments flattened at Blender's resolution, the feather outline (offset modes EVEN and
SMOOTH, weights interpolated through feather points), the one-pixel "fake AA" outline, and the mapping from mask
space to pixels and to Blender's aspect-corrected frame.

Conventions: mask space is Blender's (a square spanning the image's longer side, centred, y up); pixel coordinates
have x right and y down from the top edge; the frame is 0..1 on each axis, y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Vec2 = tuple[float, float]

# Blender's curve resolution: one point per pixel of the longest segment's control polygon, capped at 128, then a
# quarter of that for rasterising (mask_evaluate.cc, mask_rasterize.cc), clamped to [4, 512].
_RESOL_MAX = 128
# BKE_mask_point_normal's finite-difference step in u.
_NORMAL_DU = 0.05

FALLOFFS = ("SMOOTH", "SPHERE", "ROOT", "INVERSE_SQUARE", "SHARP", "LINEAR")
BLENDS = ("MERGE_ADD", "MERGE_SUBTRACT", "ADD", "SUBTRACT", "LIGHTEN", "DARKEN", "MUL", "REPLACE", "DIFFERENCE")


@dataclass
class FeatherPoint:
    """A MaskSplinePoint's extra feather point: at `u` (0..1) along the following segment, `weight` scales the
    feather width interpolated between the two points' weights there."""

    u: float
    weight: float


@dataclass
class SplinePoint:
    co: Vec2
    handle_left: Vec2
    handle_right: Vec2
    weight: float = 0.0  # feather width in mask units (Blender's default for a new point: no feather)
    feather_points: list[FeatherPoint] = field(default_factory=list)


@dataclass
class Spline:
    points: list[SplinePoint]
    cyclic: bool = True
    fill: bool = True
    offset_mode: str = "EVEN"  # EVEN or SMOOTH, as MaskSpline.offset_mode (EVEN is what splines.new() gives)
    weight_interpolation: str = "EASE"  # EASE or LINEAR, between points and feather points


@dataclass
class MaskLayer:
    splines: list[Spline] = field(default_factory=list)
    alpha: float = 1.0
    invert: bool = False
    blend: str = "MERGE_ADD"
    fill_holes: bool = False
    fill_overlap: bool = False
    falloff: str = "SMOOTH"  # shapes the feather ramp: one of FALLOFFS


# ---- curves --------------------------------------------------------------------------------------------------------


def _arrays(spline: Spline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    co = np.array([p.co for p in spline.points], dtype=np.float64).reshape(-1, 2)
    hl = np.array([p.handle_left for p in spline.points], dtype=np.float64).reshape(-1, 2)
    hr = np.array([p.handle_right for p in spline.points], dtype=np.float64).reshape(-1, 2)
    return co, hl, hr


def _bezier(p0: np.ndarray, c1: np.ndarray, c2: np.ndarray, p1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cubic Bezier points; all control arrays broadcast against t[..., None]."""
    t = t[..., None]
    u = 1.0 - t
    return (u**3) * p0 + 3 * (u**2) * t * c1 + 3 * u * (t**2) * c2 + (t**3) * p1


def bezier_polyline(spline: Spline, segments_per_curve: int = 16) -> np.ndarray:
    """Flatten the spline's cubic Beziers to a polyline (N, 2) in mask space; filling works on polygons.

    Like Blender's BKE_mask_spline_differentiate_with_resolution: each segment contributes the points at
    t = j / segments_per_curve, j < segments_per_curve, and an open spline ends with its last point.
    """
    n = len(spline.points)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float64)
    co, hl, hr = _arrays(spline)
    if n == 1:
        return co.copy()
    idx = np.arange(n if spline.cyclic else n - 1)
    nxt = (idx + 1) % n
    t = np.arange(segments_per_curve, dtype=np.float64) / segments_per_curve
    curve = _bezier(co[idx, None], hr[idx, None], hl[nxt, None], co[nxt, None], t[None, :]).reshape(-1, 2)
    if not spline.cyclic:
        curve = np.vstack([curve, co[-1:]])
    return curve


def resolution(spline: Spline, width: int, height: int) -> int:
    """Points per segment, as mask_rasterize.cc picks them (max of the outline's and the feather's needs)."""
    co, hl, hr = _arrays(spline)
    n = len(co)
    seg = np.arange(n if spline.cyclic else n - 1)
    nxt = (seg + 1) % n
    length = (
        np.linalg.norm(hr[seg] - co[seg], axis=1)
        + np.linalg.norm(hl[nxt] - hr[seg], axis=1)
        + np.linalg.norm(co[nxt] - hl[nxt], axis=1)
    )
    resol = int(np.clip(int(length.max(initial=0.0) * max(width, height)), 1, _RESOL_MAX))
    # The feather adds points where feather points make the weight jump (0.005 of weight per point).
    jump = 0.0
    for p in spline.points:
        prev_u, prev_w = 0.0, p.weight
        for fp in sorted(p.feather_points, key=lambda f: f.u):
            if fp.u - prev_u > np.finfo(np.float32).eps:
                jump = max(jump, abs((fp.weight - prev_w) / (fp.u - prev_u)))
            prev_u, prev_w = fp.u, fp.weight
    resol_feather = int(np.clip(resol + int(jump / 0.005), 1, _RESOL_MAX)) if resol < _RESOL_MAX else _RESOL_MAX
    return int(np.clip(max(resol // 4, resol_feather // 4), 4, 512))


def _segment_co(spline: Spline, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
    """BKE_mask_point_segment_co for many (segment, u): a segment without a next point is just its point."""
    co, hl, hr = _arrays(spline)
    n = len(co)
    has_next = (seg < n - 1) | spline.cyclic
    nxt = np.where(has_next, (seg + 1) % n, seg)
    curve = _bezier(co[seg], hr[seg], hl[nxt], co[nxt], u)
    return np.where(has_next[:, None], curve, co[seg])


def _normalize(v: np.ndarray) -> np.ndarray:
    """Unit vectors; zero stays zero (as Blender's normalize_v2)."""
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, length, out=np.zeros_like(v), where=length > 1e-30)


def _perp(v: np.ndarray) -> np.ndarray:
    """The vector turned a quarter counter-clockwise (y up): Blender's feather normal for a tangent."""
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


def _point_normal(spline: Spline, seg: np.ndarray, u: np.ndarray) -> np.ndarray:
    """BKE_mask_point_normal: the normal from the directions to neighbours du before and after u."""
    n = len(spline.points)
    du = _NORMAL_DU
    has_prev = (seg > 0) | spline.cyclic
    has_next = (seg < n - 1) | spline.cyclic
    co = _segment_co(spline, seg, u)
    before = np.where(
        (u - du < 0.0)[:, None],
        _segment_co(spline, (seg - 1) % n, 1.0 + (u - du)),
        _segment_co(spline, seg, u - du),
    )
    after = np.where(
        (u + du > 1.0)[:, None],
        _segment_co(spline, (seg + 1) % n, u + du - 1.0),
        _segment_co(spline, seg, u + du),
    )
    own = np.array([p.co for p in spline.points], dtype=np.float64).reshape(-1, 2)[seg]
    direction = _normalize(co - before) + _normalize(after - co)
    first = (u - du < 0.0) & ~has_prev
    last = (u + du > 1.0) & ~has_next & ~first
    direction = np.where(first[:, None], _segment_co(spline, seg, u + du) - own, direction)
    direction = np.where(last[:, None], own - _segment_co(spline, seg, u - du), direction)
    return _normalize(_perp(direction))


def _point_weight(spline: Spline, seg: int, u: np.ndarray, scalar: bool = False) -> np.ndarray:
    """BKE_mask_point_weight (or _weight_scalar: plain linear, no feather points) along one segment."""
    pts = spline.points
    n = len(pts)
    w0 = pts[seg].weight
    if seg == n - 1 and not spline.cyclic:
        return np.full(u.shape, w0)
    w1 = pts[(seg + 1) % n].weight
    if scalar:
        out = w0 * (1.0 - u) + w1 * u
    else:
        fps = sorted(pts[seg].feather_points, key=lambda f: f.u)  # Blender keeps them sorted by u
        knots_u = np.array([0.0] + [fp.u for fp in fps] + [1.0])
        knots_w = np.array([1.0] + [fp.weight for fp in fps] + [1.0])
        knots_w = knots_w * (w0 * (1.0 - knots_u) + w1 * knots_u)  # feather points scale the linear weight
        i = np.clip(np.searchsorted(knots_u, u, side="left") - 1, 0, len(knots_u) - 2)
        span = knots_u[i + 1] - knots_u[i]
        fac = np.divide(u - knots_u[i], span, out=np.zeros_like(u), where=span > 0)
        if spline.weight_interpolation == "EASE":
            fac = 3.0 * fac * fac - 2.0 * fac * fac * fac
        out = knots_w[i] + (knots_w[i + 1] - knots_w[i]) * fac
    out = np.where(u <= 0.0, w0, out)
    return np.where(u >= 1.0, w1, out)


def _samples(spline: Spline, resol: int) -> tuple[np.ndarray, np.ndarray]:
    """(segment, u) of every polyline point, in bezier_polyline's order."""
    n = len(spline.points)
    segs = n if spline.cyclic else n - 1
    seg = np.repeat(np.arange(segs), resol)
    u = np.tile(np.arange(resol, dtype=np.float64) / resol, segs)
    if not spline.cyclic:
        seg, u = np.append(seg, segs - 1), np.append(u, 1.0)
    return seg, u


def feather_even(spline: Spline, resol: int) -> np.ndarray:
    """Feather outline, offset mode EVEN: each point moved along its normal by the interpolated weight."""
    seg, u = _samples(spline, resol)
    weight = np.empty_like(u)
    for s in np.unique(seg):
        sel = seg == s
        weight[sel] = _point_weight(spline, int(s), u[sel])
    return _segment_co(spline, seg, u) + _point_normal(spline, seg, u) * weight[:, None]


def feather_smooth(spline: Spline, resol: int) -> np.ndarray:
    """Feather outline, offset mode SMOOTH: each segment's Bezier moved by its end normals (from the left handles),
    its handles scaled with the change of length, then rescaled where feather points change the weight."""
    co, hl, hr = _arrays(spline)
    n = len(co)
    weights = np.array([p.weight for p in spline.points])
    normal = _normalize(_perp(_normalize(co - hl))) * weights[:, None]
    segs = n if spline.cyclic else n - 1
    t = np.arange(resol, dtype=np.float64) / resol
    out = []
    for s in range(segs):
        e = (s + 1) % n
        p0, p1 = co[s] + normal[s], co[e] + normal[e]
        base = np.linalg.norm(co[e] - co[s])
        scale = np.linalg.norm(p1 - p0) / base if base > 0 else 1.0
        c1, c2 = p0 + (hr[s] - co[s]) * scale, p1 + (hl[e] - co[e]) * scale
        pts = _bezier(p0, c1, c2, p1, t)
        if spline.points[s].feather_points:
            on = _segment_co(spline, np.full(resol, s), t)
            plain = _point_weight(spline, s, t, scalar=True)
            ratio = np.divide(_point_weight(spline, s, t), plain, out=np.ones_like(t), where=plain != 0)
            pts = on + (pts - on) * ratio[:, None]
        out.append(pts)
    if not spline.cyclic:
        out.append((co[-1] + normal[-1])[None])
    return np.vstack(out)


def outset(points: np.ndarray, ofs: float) -> np.ndarray:
    """Blender's one-pixel "fake AA" outline: each point moved by `ofs` along the normal of the PREVIOUS vertex
    (maskrasterize_spline_differentiate_point_outset is off by one), the list taken as cyclic even when it is not."""
    d_prev = _normalize(np.roll(points, 1, axis=0) - points)
    d_next = _normalize(points - np.roll(points, -1, axis=0))
    d = _normalize(d_prev + d_next)
    offset = np.stack([d[:, 1], -d[:, 0]], axis=1) * ofs
    return points + np.roll(offset, 1, axis=0)


# ---- mapping -------------------------------------------------------------------------------------------------------


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


def to_frame(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates -> Blender's aspect-corrected frame (0..1 on each axis, y up), where its AA works."""
    return np.stack([pixels[:, 0] / width, 1.0 - pixels[:, 1] / height], axis=1)


def from_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([frame[:, 0] * width, (1.0 - frame[:, 1]) * height], axis=1)
