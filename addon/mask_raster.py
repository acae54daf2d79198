"""Rasterise Blender mask layers into region masks, as pure numpy: the add-on's mask rasteriser and its public API.

Blender has no Python-side mask rasteriser (only the compositor's Mask node, which needs a render), so the add-on
copies MaskLayer/MaskSpline/MaskSplinePoint fields into plain dataclasses (mask_curves.py, importable from here too)
and rasterises them here. This module turns each spline into its fill polygon and feather band, each layer into its
value, and combines the layers by their blend modes; mask_curves.py evaluates the curves and mask_fill.py samples
polygons and bands at pixel centres. None of them imports bpy, so they are tested without Blender.

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

import numpy as np

from .mask_curves import (
    BLENDS,
    FALLOFFS,
    FeatherPoint,
    MaskLayer,
    Spline,
    SplinePoint,
    Vec2,
    bezier_polyline,
    feather_even,
    feather_smooth,
    from_frame,
    outset,
    resolution,
    to_frame,
    to_pixels,
)
from .mask_fill import band_values, falloff, fill

__all__ = [
    "BLENDS",
    "FALLOFFS",
    "FeatherPoint",
    "MaskLayer",
    "Spline",
    "SplinePoint",
    "Vec2",
    "bezier_polyline",
    "rasterise_layer",
    "rasterise_layers",
    "to_pixels",
]


# Pixel coordinates are snapped to this grid before filling, so the float noise of the mapping (0.6 - 0.5 is not
# exactly 0.1) cannot move an edge that lies on a pixel centre or boundary.
_SNAP_DECIMALS = 6

# ---- spline geometry -----------------------------------------------------------------------------------------------


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
    resol = resolution(spline, width, height)
    outline = bezier_polyline(spline, resol)
    frame = to_frame(to_pixels(outline, width, height), width, height)
    pixel = 1.0 / min(width, height)
    aa = outset(frame, pixel)
    if feather:
        offset = feather_smooth(spline, resol) if spline.offset_mode == "SMOOTH" else feather_even(spline, resol)
        edge = to_frame(to_pixels(offset, width, height), width, height)
        thin = np.sum((edge - frame) ** 2, axis=1) < pixel * pixel  # Blender keeps a one-pixel feather at least
        edge[thin] = aa[thin]
    else:
        edge = aa
    if spline.fill:
        return np.round(from_frame(frame, width, height), _SNAP_DECIMALS), _band(frame, edge, closed=True)
    # A stroke: the band on both sides (the second side mirrors the first), half discs on open ends.
    mirror = 2.0 * frame - edge
    parts = [_band(frame, edge, spline.cyclic, flip=True), _band(frame, mirror, spline.cyclic)]
    if not spline.cyclic:
        for end, sign in ((0, 1.0), (-1, -1.0)):
            rim = np.vstack([edge[end], _cap(frame[end], edge[end], sign, width, height), mirror[end]])
            centre = np.repeat(frame[end][None], len(rim) - 1, axis=0)
            parts.append(np.stack([centre, centre, rim[:-1], rim[1:]], axis=1))
    return None, np.concatenate(parts)


# ---- layers --------------------------------------------------------------------------------------------------------


def _layer_value(layer: MaskLayer, width: int, height: int, supersample: int, feather: bool) -> np.ndarray:
    """The layer's raw value (H, W) float32: fill and feather, before alpha and invert."""
    falloff(np.zeros(0), layer.falloff)  # refuse an unknown falloff before any work
    polys: list[np.ndarray] = []
    quads: list[np.ndarray] = []
    for spline in layer.splines:
        poly, spline_quads = _spline_geometry(spline, width, height, feather)
        if poly is not None:
            polys.append(poly)
        quads.append(spline_quads)
    idx, val = band_values(np.concatenate(quads) if quads else np.zeros((0, 4, 2)), width, height)
    mask = fill(polys, layer.fill_holes, width, height, supersample)
    if not len(idx):
        return mask
    if supersample > 1:
        # Blender's band only shows at pixel centres outside the fill; a partly covered pixel whose centre is in
        # the fill keeps its coverage rather than the band's 1 along the outline.
        outside = fill(polys, layer.fill_holes, width, height, 1).reshape(-1)[idx] == 0
        idx, val = idx[outside], val[outside]
    # falloff is increasing, so shaping before taking the largest value equals Blender's shaping after.
    np.maximum.at(mask.reshape(-1), idx, falloff(val, layer.falloff).astype(np.float32))
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
