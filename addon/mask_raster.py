"""Rasterise Blender mask layers into region masks, as pure numpy.

Blender has no Python-side mask rasteriser (only the compositor's Mask node, which needs a render), so the add-on
copies MaskLayer/MaskSpline/MaskSplinePoint fields into the plain dataclasses below and rasterises them here. Keeping
this module free of bpy lets it be tested without Blender.

Conventions: mask space is Blender's (a square spanning the image's longer side, centred, y up); the arrays returned
are numpy images (row 0 is the TOP row), float32 in [0, 1].

The model follows Blender's own rasteriser (blenkernel mask_rasterize.cc, as the compositor Mask node runs it in
5.0), checked against that node in tests/test_mask_oracle.py:
- Splines are flattened with Blender's resolution (4..32 points per segment). Filled splines (cyclic or not: an open
  filled spline is closed by a straight edge) are sampled at pixel centres; holes per fill_holes.
- Every spline also gets a band of quads between its outline (value 1) and a feather outline (value 0); values inside
  come from Blender's mean-value weights, shaped by the layer's falloff, and a pixel takes the largest value over it.
  The feather outline is the spline offset by `weight` (mask units) along the tangent turned a quarter turn
  counter-clockwise: outward for clockwise splines (y up); for counter-clockwise ones it falls inside the fill and
  cannot be seen, as in Blender.
- Where the feather is under a pixel wide, or feather is off, Blender still offsets the outline by one pixel (its
  "fake anti-aliasing"); so is it here. Unfilled splines become strokes, feathered to both sides, capped when open.
Not modelled: use_self_intersection_check (feather loop collapse), fill_overlap's self-intersection fill, motion blur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Vec2 = tuple[float, float]

# Pixel coordinates are snapped to this grid before filling, so the float noise of the mapping (0.6 - 0.5 is not
# exactly 0.1) cannot move an edge that lies on a pixel centre or boundary.
_SNAP_DECIMALS = 6

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


def _resolution(spline: Spline, width: int, height: int) -> int:
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


def _feather_even(spline: Spline, resol: int) -> np.ndarray:
    """Feather outline, offset mode EVEN: each point moved along its normal by the interpolated weight."""
    seg, u = _samples(spline, resol)
    weight = np.empty_like(u)
    for s in np.unique(seg):
        sel = seg == s
        weight[sel] = _point_weight(spline, int(s), u[sel])
    return _segment_co(spline, seg, u) + _point_normal(spline, seg, u) * weight[:, None]


def _feather_smooth(spline: Spline, resol: int) -> np.ndarray:
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


def _outset(points: np.ndarray, ofs: float) -> np.ndarray:
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


def _to_frame(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates -> Blender's aspect-corrected frame (0..1 on each axis, y up), where its AA works."""
    return np.stack([pixels[:, 0] / width, 1.0 - pixels[:, 1] / height], axis=1)


def _from_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([frame[:, 0] * width, (1.0 - frame[:, 1]) * height], axis=1)


# ---- fill ----------------------------------------------------------------------------------------------------------


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
    """Accumulate spans into an (H, W) float32 image.

    s == 1: Blender's sampling, a pixel is in when its centre is (x0 <= centre < x1). s > 1: s sample rows per
    pixel row with exact horizontal coverage. Each span adds a ramp at its start and removes it at its end; one
    cumsum per row, over the rows that spans touch only, gives the pixels, so no Python loop touches pixels.
    """
    out = np.zeros((height, width), dtype=np.float32)
    if not len(rows):
        return out
    stride = width + 2
    pix_rows = rows // s
    r0, r1 = int(pix_rows.min()), int(pix_rows.max()) + 1
    base = (pix_rows - r0) * stride
    size = (r1 - r0) * stride
    if s == 1:
        c0 = np.clip(np.ceil(x0 - 0.5), 0, width).astype(np.int64)
        c1 = np.clip(np.ceil(x1 - 0.5), 0, width).astype(np.int64)
        idx = np.concatenate([base + c0, base + c1])
        weights = np.concatenate([np.ones(len(c0)), -np.ones(len(c1))])
    else:
        idx_parts, w_parts = [], []
        for xv, sign in ((np.clip(x0, 0, width), 1.0 / s), (np.clip(x1, 0, width), -1.0 / s)):
            col = np.floor(xv).astype(np.int64)
            frac = xv - col
            idx_parts += [base + col, base + col + 1]
            w_parts += [sign * (1.0 - frac), sign * frac]
        idx, weights = np.concatenate(idx_parts), np.concatenate(w_parts)
    acc = np.bincount(idx, weights=weights, minlength=size)[:size].reshape(r1 - r0, stride)
    block = np.cumsum(acc, axis=1, dtype=np.float32)[:, :width]
    if s == 1:
        out[r0:r1] = block  # disjoint spans: every running sum is 0 or 1 already
    else:
        np.clip(block, 0.0, 1.0, out=out[r0:r1])
    return out


# ---- feather band --------------------------------------------------------------------------------------------------


def _raster_triangles(tris: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Point-sample triangles (T, 3, 2), in pixel coordinates, at pixel centres (edges included).

    Returns (flat pixel index, triangle index) for every covered pair; only pixels inside triangles are visited:
    rows per triangle, then one x-interval per (triangle, row).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    ys = tris[:, :, 1]
    r_lo = np.clip(np.ceil(ys.min(axis=1) - 0.5), 0, height).astype(np.int64)
    r_hi = np.clip(np.floor(ys.max(axis=1) - 0.5) + 1, 0, height).astype(np.int64)
    counts = np.maximum(r_hi - r_lo, 0)
    total = int(counts.sum())
    if total == 0:
        return empty
    tri = np.repeat(np.arange(len(tris)), counts)
    rows = r_lo[tri] + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    yc = rows + 0.5
    lo = np.full(total, np.inf)
    hi = np.full(total, -np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        p, q = tris[tri, i], tris[tri, j]
        dy = q[:, 1] - p[:, 1]
        hit = ((yc - p[:, 1]) * (yc - q[:, 1]) <= 0) & (dy != 0)
        x = p[:, 0] + (yc - p[:, 1]) * np.divide(q[:, 0] - p[:, 0], dy, out=np.zeros_like(dy), where=dy != 0)
        lo = np.where(hit, np.minimum(lo, x), lo)
        hi = np.where(hit, np.maximum(hi, x), hi)
    ok = np.isfinite(lo) & np.isfinite(hi)
    c_lo = np.clip(np.ceil(np.where(ok, lo, 0.0) - 0.5), 0, width).astype(np.int64)
    c_hi = np.clip(np.floor(np.where(ok, hi, -1.0) - 0.5) + 1, 0, width).astype(np.int64)
    n_cols = np.where(ok, np.maximum(c_hi - c_lo, 0), 0)
    total = int(n_cols.sum())
    if total == 0:
        return empty
    pair = np.repeat(np.arange(len(rows)), n_cols)
    cols = c_lo[pair] + (np.arange(total) - np.repeat(np.cumsum(n_cols) - n_cols, n_cols))
    return rows[pair] * width + cols, tri[pair]


def _quad_values(quads: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Blender's feather value at points inside quads (v0, v1 on the outline, v2, v3 on the feather outline):
    1 - depth, with depth from mean-value weights (barycentric_weights_v2_quad, abs() included)."""
    dirs = quads - points[:, None, :]
    lens = np.sqrt(dirs[..., 0] ** 2 + dirs[..., 1] ** 2)
    nxt = np.roll(dirs, -1, axis=1)
    area = dirs[..., 0] * nxt[..., 1] - dirs[..., 1] * nxt[..., 0]
    dot = dirs[..., 0] * nxt[..., 0] + dirs[..., 1] * nxt[..., 1]
    half_tan = np.abs(np.divide(lens * np.roll(lens, -1, axis=1) - dot, area, out=np.zeros_like(area), where=area != 0))
    tiny = lens < np.finfo(np.float32).eps
    w = np.divide(np.roll(half_tan, 1, axis=1) + half_tan, lens, out=np.zeros_like(lens), where=~tiny)
    total = w.sum(axis=1)
    value = np.divide(w[:, 0] + w[:, 1], total, out=np.full(len(w), 0.5), where=total != 0)
    # A point on a vertex takes that vertex's value (Blender tests the vertices in order).
    for k in (3, 2, 1, 0):
        value = np.where(tiny[:, k], 1.0 if k < 2 else 0.0, value)
    return value


def _band(inner: np.ndarray, outer: np.ndarray, closed: bool, flip: bool = False) -> np.ndarray:
    """Quads (Q, 4, 2) between two matching outlines: (inner k, inner k+1, outer k+1, outer k), or from k+1 back
    to k with `flip` (the order Blender gives a stroke's first side, which decides the quad's diagonal)."""
    k = np.arange(len(inner) if closed else len(inner) - 1)
    k1 = (k + 1) % len(inner)
    if flip:
        k, k1 = k1, k
    return np.stack([inner[k], inner[k1], outer[k1], outer[k]], axis=1)


def _cap(centre: np.ndarray, turn: np.ndarray, sign: float, width: int, height: int) -> np.ndarray:
    """Rim points of the half disc closing an open stroke's end: `turn` rotated about `centre` by +-pi (frame
    coordinates, rotated in pixel proportions as Blender's rotate_point_v2 does)."""
    pixel = 1.0 / min(width, height)
    n = int(np.clip(int(np.linalg.norm(turn - centre) / (pixel * 2)), 8, 64))
    asp = np.array([height / width if width > height else 1.0, width / height if width < height else 1.0])
    rel = (turn - centre) / asp
    ang = sign * np.arange(1, n) / n * np.pi
    rot = np.stack([rel[0] * np.cos(ang) - rel[1] * np.sin(ang), rel[0] * np.sin(ang) + rel[1] * np.cos(ang)], 1)
    return rot * asp + centre


def _spline_geometry(spline: Spline, width: int, height: int, feather: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """One spline's fill polygon (pixel coordinates, None when unfilled) and its band quads (frame coordinates)."""
    if len(spline.points) < 2:
        return None, np.zeros((0, 4, 2))
    resol = _resolution(spline, width, height)
    outline = bezier_polyline(spline, resol)
    frame = _to_frame(to_pixels(outline, width, height), width, height)
    pixel = 1.0 / min(width, height)
    aa = _outset(frame, pixel)
    if feather:
        offset = _feather_smooth(spline, resol) if spline.offset_mode == "SMOOTH" else _feather_even(spline, resol)
        edge = _to_frame(to_pixels(offset, width, height), width, height)
        thin = np.sum((edge - frame) ** 2, axis=1) < pixel * pixel  # Blender keeps a one-pixel feather at least
        edge[thin] = aa[thin]
    else:
        edge = aa
    if spline.fill:
        return np.round(_from_frame(frame, width, height), _SNAP_DECIMALS), _band(frame, edge, closed=True)
    # A stroke: the band on both sides (the second side mirrors the first), half discs on open ends.
    mirror = 2.0 * frame - edge
    parts = [_band(frame, edge, spline.cyclic, flip=True), _band(frame, mirror, spline.cyclic)]
    if not spline.cyclic:
        for end, sign in ((0, 1.0), (-1, -1.0)):
            rim = np.vstack([edge[end], _cap(frame[end], edge[end], sign, width, height), mirror[end]])
            centre = np.repeat(frame[end][None], len(rim) - 1, axis=0)
            parts.append(np.stack([centre, centre, rim[:-1], rim[1:]], axis=1))
    return None, np.concatenate(parts)


def _band_values(quads: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel index, value) of every pixel centre inside a band quad; a pixel may come more than once."""
    if not len(quads):
        return np.zeros(0, np.int64), np.zeros(0)
    px = _from_frame(quads.reshape(-1, 2), width, height).reshape(-1, 4, 2)
    tris = np.concatenate([px[:, [0, 1, 2]], px[:, [0, 2, 3]]])  # Blender's hit test splits each quad so
    idx, tri = _raster_triangles(tris, width, height)
    quad = tri % len(quads)
    centres = np.stack([(idx % width + 0.5) / width, 1.0 - (idx // width + 0.5) / height], axis=1)
    return idx, np.clip(_quad_values(quads[quad], centres), 0.0, 1.0)


def _falloff(v: np.ndarray, mode: str) -> np.ndarray:
    """The layer's falloff curve on feather values in [0, 1] (mask_rasterize.cc); all are increasing."""
    if mode == "SMOOTH":
        return v * v * (3.0 - 2.0 * v)
    if mode == "SPHERE":
        return np.sqrt(np.clip(2.0 * v - v * v, 0.0, None))
    if mode == "ROOT":
        return np.sqrt(v)
    if mode == "SHARP":
        return v * v
    if mode == "INVERSE_SQUARE":
        return v * (2.0 - v)
    if mode == "LINEAR":
        return v
    raise ValueError(f"unknown mask falloff {mode!r}; expected one of {', '.join(FALLOFFS)}")


# ---- layers --------------------------------------------------------------------------------------------------------


def _fill(polys: list[np.ndarray], fill_holes: bool, width: int, height: int, supersample: int) -> np.ndarray:
    """The filled splines' coverage (H, W) float32: even-odd with fill_holes, else their union."""
    per_spline = [_crossings(poly, height * supersample, supersample) for poly in polys]
    per_spline = [(rows, xs) for rows, xs in per_spline if len(rows)]
    if not per_spline:
        spans = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    elif fill_holes:
        spans = _even_odd_spans(np.concatenate([r for r, _ in per_spline]), np.concatenate([x for _, x in per_spline]))
    else:
        spans = _union_spans([_even_odd_spans(r, x) for r, x in per_spline])
    return _coverage(*spans, width, height, supersample)


def _layer_value(layer: MaskLayer, width: int, height: int, supersample: int, feather: bool) -> np.ndarray:
    """The layer's raw value (H, W) float32: fill and feather, before alpha and invert."""
    _falloff(np.zeros(0), layer.falloff)  # refuse an unknown falloff before any work
    polys: list[np.ndarray] = []
    quads: list[np.ndarray] = []
    for spline in layer.splines:
        poly, spline_quads = _spline_geometry(spline, width, height, feather)
        if poly is not None:
            polys.append(poly)
        quads.append(spline_quads)
    idx, val = _band_values(np.concatenate(quads) if quads else np.zeros((0, 4, 2)), width, height)
    mask = _fill(polys, layer.fill_holes, width, height, supersample)
    if not len(idx):
        return mask
    if supersample > 1:
        # Blender's band only shows at pixel centres outside the fill; a partly covered pixel whose centre is in
        # the fill keeps its coverage rather than the band's 1 along the outline.
        outside = _fill(polys, layer.fill_holes, width, height, 1).reshape(-1)[idx] == 0
        idx, val = idx[outside], val[outside]
    # falloff is increasing, so shaping before taking the largest value equals Blender's shaping after.
    np.maximum.at(mask.reshape(-1), idx, _falloff(val, layer.falloff).astype(np.float32))
    return mask


def _check_blend(mode: str) -> None:
    if mode not in BLENDS:
        raise ValueError(f"unknown mask blend mode {mode!r}; expected one of {', '.join(BLENDS)}")


def _contribution(layer: MaskLayer, raw: np.ndarray) -> np.ndarray:
    """What Blender blends for this layer: alpha then invert; REPLACE takes the inverted value and mixes by alpha.

    Works in place on `raw`, which callers do not use again.
    """
    if layer.blend != "REPLACE" and layer.alpha != 1.0:
        raw *= np.float32(layer.alpha)
    if layer.invert:
        np.subtract(np.float32(1.0), raw, out=raw)
    return raw


def rasterise_layer(
    layer: MaskLayer, width: int, height: int, supersample: int = 1, feather: bool = True
) -> np.ndarray:
    """One layer's mask (H, W) float32 in [0, 1]: fill, holes per fill_holes, feather, alpha, invert.

    As Blender's compositor Mask node does it (checked on 5.0.1): fill_holes=True combines a layer's splines
    by even-odd, so a spline inside another cuts a hole; fill_holes=False unions them (fill_overlap is not
    modelled: on, Blender's scanfill can drop parts of the fill where three crossing splines of mixed winding
    meet). `feather` is the node's Feather switch: off, points' weights are ignored (the one-pixel AA band stays).
    `supersample` 1 samples pixel centres, as Blender; s > 1 anti-aliases the fill's hard edges (s rows per pixel,
    exact horizontally). The value is alpha * mask, inverted after as Blender does (1 - alpha * mask); for a
    REPLACE layer, alpha * (inverted) mask, which is what it mixes in.
    """
    _check_blend(layer.blend)
    out = _contribution(layer, _layer_value(layer, width, height, supersample, feather))
    if layer.blend == "REPLACE" and layer.alpha != 1.0:
        out *= np.float32(layer.alpha)
    return out


def _blend(value: np.ndarray, layer_value: np.ndarray, mode: str, alpha: float) -> np.ndarray:
    """Blender's mask layer blend modes (BKE_maskrasterize_handle_sample), clamped to [0, 1] after each layer.

    Both inputs are in [0, 1]; only ADD and SUBTRACT can leave it, so only they are clamped. Reuses the arrays.
    """
    one = np.float32(1.0)
    if mode == "MERGE_ADD":  # v + l * (1 - v)
        out = np.multiply(layer_value, one - value, out=layer_value)
        out += value
    elif mode == "MERGE_SUBTRACT":  # v - l * v
        out = np.multiply(layer_value, value, out=layer_value)
        np.subtract(value, out, out=out)
    elif mode == "ADD":
        out = np.add(value, layer_value, out=value)
        np.clip(out, 0.0, 1.0, out=out)
    elif mode == "SUBTRACT":
        out = np.subtract(value, layer_value, out=value)
        np.clip(out, 0.0, 1.0, out=out)
    elif mode == "LIGHTEN":
        out = np.maximum(value, layer_value, out=value)
    elif mode == "DARKEN":
        out = np.minimum(value, layer_value, out=value)
    elif mode == "MUL":
        out = np.multiply(value, layer_value, out=value)
    elif mode == "REPLACE":
        out = np.multiply(value, np.float32(1.0 - alpha), out=value)
        out += layer_value * np.float32(alpha)
    elif mode == "DIFFERENCE":
        out = np.subtract(value, layer_value, out=value)
        np.abs(out, out=out)
    else:
        raise ValueError(f"unknown mask blend mode {mode!r}; expected one of {', '.join(BLENDS)}")
    return out


def rasterise_layers(
    layers: Sequence[MaskLayer], width: int, height: int, supersample: int = 1, feather: bool = True
) -> np.ndarray:
    """All layers (H, W) float32, combined in order from an empty mask with each layer's blend mode."""
    for layer in layers:
        _check_blend(layer.blend)
    out = np.zeros((height, width), dtype=np.float32)
    for layer in layers:
        raw = _layer_value(layer, width, height, supersample, feather)
        out = _blend(out, _contribution(layer, raw), layer.blend, layer.alpha)
    return out
