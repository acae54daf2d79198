"""Sampling a layer's geometry at pixel centres, as pure numpy: the fill of its polygons, and its feather band.

Fill: each polygon's edges are crossed by sample rows (scanline crossings), paired into inside spans (even-odd for
fill_holes, else a union of the splines' spans), and the spans accumulated into coverage with one cumsum per row.
Band: quads between an outline and its feather outline are split into triangles and point-sampled; each covered
pixel gets Blender's mean-value feather value (1 on the outline, 0 on the feather outline), shaped by the layer's
falloff. Nothing here loops over pixels in Python.
"""

from __future__ import annotations

import numpy as np

from .mask_curves import FALLOFFS, from_frame

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


def fill(polys: list[np.ndarray], fill_holes: bool, width: int, height: int, supersample: int) -> np.ndarray:
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


def band_values(quads: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel index, value) of every pixel centre inside a band quad; a pixel may come more than once."""
    if not len(quads):
        return np.zeros(0, np.int64), np.zeros(0)
    px = from_frame(quads.reshape(-1, 2), width, height).reshape(-1, 4, 2)
    tris = np.concatenate([px[:, [0, 1, 2]], px[:, [0, 2, 3]]])  # Blender's hit test splits each quad so
    idx, tri = _raster_triangles(tris, width, height)
    quad = tri % len(quads)
    centres = np.stack([(idx % width + 0.5) / width, 1.0 - (idx // width + 0.5) / height], axis=1)
    return idx, np.clip(_quad_values(quads[quad], centres), 0.0, 1.0)


def falloff(v: np.ndarray, mode: str) -> np.ndarray:
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
