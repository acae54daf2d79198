"""Texture-space masks for texture generation (issue 14's first piece): a mesh's UV triangles rasterised into a
label map, one label per material slot, and each slot's mask grown past its islands' edges by a margin, so a
texture painted per slot shows no seam where mipmapping or filtering reads across an island's border.

Pure numpy (Blender's Python has numpy, not scipy): addon/blender/ hands over the triangles and their slots.
Images are top-down: row 0 is v = 1, as a PNG and the engine hold them; a texel belongs to a triangle when its
centre is inside it (or on an edge).
"""

from __future__ import annotations

import numpy as np

NO_FACE = -1


def rasterise(uvs: np.ndarray, slots: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width) int32 label map: each texel's material slot, NO_FACE where no triangle covers it.

    uvs: (T, 3, 2) UV coordinates of each triangle's corners; slots: (T,) the material slot of each triangle.
    Later triangles win where triangles overlap (overlapping UVs are the artist's choice)."""
    labels = np.full((height, width), NO_FACE, dtype=np.int32)
    # Texel centres in pixel units, v flipped so that row 0 is the top of the texture.
    points = np.asarray(uvs, dtype=np.float64) * (width, height)
    points[..., 1] = height - points[..., 1]
    for corners, slot in zip(points, np.asarray(slots), strict=True):
        x0, y0 = np.floor(corners.min(0) - 0.5).astype(int)
        x1, y1 = np.ceil(corners.max(0) - 0.5).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
        if x1 < x0 or y1 < y0:
            continue
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        inside = _inside(corners, xs, ys)
        labels[y0 : y1 + 1, x0 : x1 + 1][inside] = int(slot)
    return labels


def _inside(corners: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Texel centres inside (or on an edge of) the triangle, whichever way it winds; none for a degenerate one."""
    (ax, ay), (bx, by), (cx, cy) = corners
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    if abs(area) < 1e-12:
        return np.zeros(xs.shape, dtype=bool)
    sign = 1.0 if area > 0 else -1.0
    edges = [
        ((bx - ax) * (ys - ay) - (by - ay) * (xs - ax)) * sign,
        ((cx - bx) * (ys - by) - (cy - by) * (xs - bx)) * sign,
        ((ax - cx) * (ys - cy) - (ay - cy) * (xs - cx)) * sign,
    ]
    eps = -1e-9 * abs(area)
    return (edges[0] >= eps) & (edges[1] >= eps) & (edges[2] >= eps)


def bleed(labels: np.ndarray, margin: int) -> np.ndarray:
    """The label map with each island grown into uncovered texels by up to `margin` texels (8-connected, the
    nearest island first; where two islands meet, the lower slot wins, so the result is the same every time)."""
    grown = labels.copy()
    for _ in range(max(0, margin)):
        empty = grown == NO_FACE
        if not empty.any():
            break
        best = np.full(grown.shape, np.iinfo(np.int32).max, dtype=np.int64)
        padded = np.pad(grown, 1, constant_values=NO_FACE)
        h, w = grown.shape
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == dx == 0:
                    continue
                neighbour = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                candidate = np.where(neighbour == NO_FACE, np.iinfo(np.int32).max, neighbour)
                best = np.minimum(best, candidate)
        fill = empty & (best != np.iinfo(np.int32).max)
        if not fill.any():
            break
        grown[fill] = best[fill]
    return grown


def slot_masks(labels: np.ndarray, slots: int, margin: int = 0) -> np.ndarray:
    """(slots, height, width) float32 masks, one per material slot, grown by `margin` texels past their islands."""
    grown = bleed(labels, margin)
    return np.stack([(grown == slot).astype(np.float32) for slot in range(slots)])
