"""Projection of camera images back into an object's UV texture: each texel takes the weighted mean of what the
cameras that see it show at its position, weighted by how squarely each camera sees it and how far its image
position lies from a silhouette; texels no camera sees keep the texture they had.

Pure numpy (Blender's Python has numpy, not scipy): addon/blender/texel_geometry.py hands over the triangles, the
occluders and the cameras. Conventions are addon/uv_raster.py's: images top-down (texture row 0 is v = 1, image
row 0 is the top of the frame), pixel and texel centres at +0.5, a texel belongs to the triangle its centre lies
in (later triangles win). Depth is view depth: world units along the camera's viewing direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .uv_raster import NO_FACE, rasterise

# Occluders are clipped this far (world units) in front of the camera, so no corner projects to infinity.
NEAR = 1e-3


@dataclass(frozen=True, eq=False)
class TexelGeometry:
    """Per-texel surface of an object: world position (H, W, 3), unit normal (H, W, 3), covered mask (H, W)."""

    position: np.ndarray
    normal: np.ndarray
    covered: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.covered.shape


@dataclass(frozen=True, eq=False)
class Camera:
    """A camera as Blender renders it: `matrix` is world→clip (OpenGL clip space, as
    `camera.calc_matrix_camera(depsgraph, x=width, y=height) @ camera.matrix_world.inverted()` gives it),
    `position` its world position, and the rendered image's size in pixels."""

    matrix: np.ndarray
    position: np.ndarray
    width: int
    height: int
    forward: np.ndarray = field(init=False, repr=False)
    perspective: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        matrix = _frozen(np.asarray(self.matrix, dtype=np.float64).reshape(4, 4))
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "position", _frozen(np.asarray(self.position, dtype=np.float64).reshape(3)))
        # Clip z grows with depth in both Blender's perspective and orthographic matrices (lens shift only
        # touches the x and y rows), so its row's xyz is the viewing direction; an orthographic w row is constant.
        forward = matrix[2, :3] / np.linalg.norm(matrix[2, :3])
        object.__setattr__(self, "forward", _frozen(forward))
        object.__setattr__(self, "perspective", bool(np.abs(matrix[3, :3]).max() > 1e-12))

    def depth(self, points: np.ndarray) -> np.ndarray:
        """View depth of world points (..., 3): distance along the viewing direction, negative behind."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.forward

    def towards(self, points: np.ndarray) -> np.ndarray:
        """Unit directions (..., 3) from world points to the camera (the reverse view direction if orthographic)."""
        if not self.perspective:
            return np.broadcast_to(-self.forward, np.shape(points)).copy()
        offset = self.position - np.asarray(points, dtype=np.float64)
        length = np.linalg.norm(offset, axis=-1, keepdims=True)
        return offset / np.maximum(length, 1e-30)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.setflags(write=False)
    return array


def to_pixels(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) to image positions (..., 2) as (x, y) in pixels, top-down, pixel centres at +0.5,
    and their view depth (...). Points behind the camera (depth <= 0) get meaningless positions: check depth."""
    points = np.asarray(points, dtype=np.float64)
    clip = points @ camera.matrix[:3, :3].T + camera.matrix[:3, 3]
    w = points @ camera.matrix[3, :3] + camera.matrix[3, 3]
    w = np.where(np.abs(w) < 1e-30, 1e-30, w)
    x = (clip[..., 0] / w + 1.0) * 0.5 * camera.width
    y = (1.0 - clip[..., 1] / w) * 0.5 * camera.height
    return np.stack([x, y], axis=-1), camera.depth(points)


def _clip_w(camera: Camera, points: np.ndarray) -> np.ndarray:
    """Clip-space w of world points: the divisor that makes screen-space interpolation perspective-correct."""
    return np.asarray(points, dtype=np.float64) @ camera.matrix[3, :3] + camera.matrix[3, 3]


def _barycentrics(corners: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Barycentric weights (..., 3) of points (xs, ys) in 2D triangles `corners` (..., 3, 2), broadcast together;
    the triangles must not be degenerate."""
    (ax, ay), (bx, by), (cx, cy) = (np.moveaxis(corners[..., i, :], -1, 0) for i in range(3))
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    wa = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
    wb = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
    return np.stack([wa, wb, 1.0 - wa - wb], axis=-1)


# ---- texel geometry ------------------------------------------------------------------------------------------


def texel_geometry(
    uvs: np.ndarray, positions: np.ndarray, normals: np.ndarray, width: int, height: int
) -> TexelGeometry:
    """The surface under each texel centre of a (height, width) texture: uvs (T, 3, 2), world corner positions
    (T, 3, 3) and corner normals (T, 3, 3) of the same triangles, interpolated barycentrically in UV space.
    Coverage is uv_raster.rasterise's (the triangle index is the label), so the masks and the projection agree."""
    uvs = np.asarray(uvs, dtype=np.float64)
    owner = rasterise(uvs, np.arange(len(uvs)), width, height)
    covered = owner != NO_FACE
    texels = np.flatnonzero(covered)
    rows, cols = np.divmod(texels, width)
    triangles = owner.ravel()[texels]
    corners = uvs[triangles] * (width, height)  # pixel units, v flipped as rasterise does
    corners[..., 1] = height - corners[..., 1]
    weights = _barycentrics(corners, cols + 0.5, rows + 0.5)
    position = np.zeros((height * width, 3), dtype=np.float32)
    normal = np.zeros((height * width, 3), dtype=np.float32)
    position[texels] = np.einsum("nk,nkc->nc", weights, np.asarray(positions, dtype=np.float64)[triangles])
    blended = np.einsum("nk,nkc->nc", weights, np.asarray(normals, dtype=np.float64)[triangles])
    normal[texels] = blended / np.maximum(np.linalg.norm(blended, axis=-1, keepdims=True), 1e-30)
    return TexelGeometry(position.reshape(height, width, 3), normal.reshape(height, width, 3), covered)


# ---- z-buffer ------------------------------------------------------------------------------------------------


def depth_buffer(camera: Camera, triangles: np.ndarray) -> np.ndarray:
    """(height, width) float64 view depth of the nearest of the world triangles (T, 3, 3) at each pixel centre,
    inf where none covers it (a pixel on an edge is covered). Triangles crossing the near plane are clipped to
    it; depth is interpolated perspective-correctly (depth/w and 1/w are linear in screen space)."""
    depth = np.full((camera.height, camera.width), np.inf)
    front = _in_front(camera, np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 3))
    corners, corner_depth = to_pixels(camera, front)
    # Each triangle's box of pixel centres, as uv_raster.rasterise finds it, clamped to the image.
    low = np.maximum(np.floor(corners.min(1) - 0.5).astype(int), 0)
    high = np.minimum(np.ceil(corners.max(1) - 0.5).astype(int), (camera.width - 1, camera.height - 1))
    edges = _edge_functions(corners)
    drawn = (high >= low).all(1) & np.isfinite(edges).all((1, 2))
    inverse_w = 1.0 / _clip_w(camera, front[drawn])
    # Over a triangle, every attribute interpolated in screen space is an affine function of the pixel centre.
    planes = np.concatenate([edges[drawn], _affine(edges[drawn], corner_depth[drawn] * inverse_w, inverse_w)], 1)
    low, high = low[drawn], high[drawn]
    for (w, h), members in _batches(high - low + 1):
        rows = max(1, BATCH_PIXELS // w)  # a triangle larger than a batch is drawn a strip of rows at a time
        for top in range(0, h, rows):
            _draw(depth, planes[members], low[members] + (0, top), (w, min(rows, h - top)))
    return depth


def _edge_functions(corners: np.ndarray) -> np.ndarray:
    """(T, 3, 3) coefficients (constant, x, y) of each 2D triangle's (T, 3, 2) barycentric weights as affine
    functions of the point; not finite for a degenerate triangle."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    rows = [
        [p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0], p[:, 1] - q[:, 1], q[:, 0] - p[:, 0]]
        for p, q in ((b, c), (c, a), (a, b))
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.moveaxis(np.array(rows), (0, 1), (1, 2)) / np.where(np.abs(area) > 1e-12, area, 0.0)[:, None, None]


def _affine(edges: np.ndarray, *values: np.ndarray) -> np.ndarray:
    """(T, len(values), 3) coefficients of corner values (T, 3) each, interpolated linearly over the triangles."""
    return np.stack([np.einsum("nk,nkc->nc", value, edges) for value in values], axis=1)


# Triangles with boxes up to this many pixels a side are drawn together in boxes of a shared size (a power of two
# up to 8, then a multiple of 8), at most this many pixels at a time: thousands of small triangles cost few numpy
# calls.
BATCH_SIDE = 64
BATCH_PIXELS = 1 << 20


def _batches(sizes: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Groups of triangles (indices into `sizes`, their (K, 2) box sizes) drawn in one shared (w, h) box."""
    shared = np.where(sizes <= 8, 2 ** np.ceil(np.log2(np.maximum(sizes, 1))), np.ceil(sizes / 8) * 8).astype(int)
    boxes = np.where(sizes <= BATCH_SIDE, shared, sizes)
    keys, group, counts = np.unique(boxes, axis=0, return_inverse=True, return_counts=True)
    batches = []
    groups = np.split(np.argsort(group.ravel(), kind="stable"), np.cumsum(counts)[:-1])
    for (w, h), members in zip(keys, groups, strict=True):
        step = max(1, BATCH_PIXELS // int(w * h))
        batches.extend(((int(w), int(h)), members[i : i + step]) for i in range(0, len(members), step))
    return batches


def _draw(depth: np.ndarray, planes: np.ndarray, low: np.ndarray, box: tuple[int, int]) -> None:
    """Keep the nearer of `depth` and each triangle at the pixel centres it covers in its (w, h) box from `low`
    (n, 2). planes (n, 5, 3): the affine coefficients of its three barycentric weights, depth/w and 1/w."""
    height, width = depth.shape
    xs = low[:, 0, None, None] + np.arange(box[0])[None, None, :]
    ys = low[:, 1, None, None] + np.arange(box[1])[None, :, None]
    cx, cy = xs + 0.5, ys + 0.5

    def at(index: int) -> np.ndarray:
        constant, slope_x, slope_y = (planes[:, index, i, None, None] for i in range(3))
        return constant + slope_x * cx + slope_y * cy

    inside = (xs < width) & (ys < height) & (at(0) >= -1e-9) & (at(1) >= -1e-9) & (at(2) >= -1e-9)
    here = at(3)[inside] / at(4)[inside]
    pixels = np.broadcast_to(ys * width + xs, inside.shape)[inside]
    np.minimum.at(depth.reshape(-1), pixels, here)


def _in_front(camera: Camera, triangles: np.ndarray) -> np.ndarray:
    """The triangles' parts in front of the near plane, as triangles (K, 3, 3)."""
    depths = camera.depth(triangles)
    front = (depths >= NEAR).all(1)
    crossing = ~front & (depths >= NEAR).any(1)
    pieces = [triangles[front]]
    for triangle, depth in zip(triangles[crossing], depths[crossing], strict=True):
        polygon = _clip_polygon(triangle, depth - NEAR)
        pieces.extend(np.stack([polygon[0], polygon[i], polygon[i + 1]])[None] for i in range(1, len(polygon) - 1))
    return np.concatenate(pieces)


def _clip_polygon(corners: np.ndarray, distance: np.ndarray) -> list[np.ndarray]:
    """Sutherland–Hodgman: the part of a polygon where `distance` (per corner, affine) is >= 0."""
    kept = []
    for i in range(len(corners)):
        j = (i + 1) % len(corners)
        if distance[i] >= 0:
            kept.append(corners[i])
        if (distance[i] >= 0) != (distance[j] >= 0):
            t = distance[i] / (distance[i] - distance[j])
            kept.append(corners[i] + t * (corners[j] - corners[i]))
    return kept


# ---- weights -------------------------------------------------------------------------------------------------


def silhouette_distance(depth: np.ndarray, feather: int, jump: float = 0.05) -> np.ndarray:
    """(h, w) float32 factor from 0 to 1: each pixel's chessboard distance to the nearest silhouette pixel (empty,
    or differing from a 4-neighbour by more than `jump` relative to the nearer depth) or to the image's border,
    divided by `feather` and capped at 1. 1 everywhere when `feather` is 0."""
    if feather <= 0:
        return np.ones(depth.shape, dtype=np.float32)
    edge = ~np.isfinite(depth)
    for axis in (0, 1):
        a, b = np.swapaxes(depth, 0, axis)[:-1], np.swapaxes(depth, 0, axis)[1:]
        with np.errstate(invalid="ignore"):  # inf - inf: both empty, already edges; finite next to inf: a jump
            jumps = np.abs(a - b) > jump * np.minimum(a, b)
        np.swapaxes(edge, 0, axis)[:-1] |= jumps
        np.swapaxes(edge, 0, axis)[1:] |= jumps
    distance = np.full(depth.shape, float(feather), dtype=np.float32)
    reached = np.pad(edge, 1, constant_values=True)  # beyond the border counts as a silhouette
    distance[edge] = 0.0
    for step in range(1, feather):
        grown = _dilate(reached)
        distance[(grown & ~reached)[1:-1, 1:-1]] = step
        reached = grown
    return distance / feather


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One 3×3 dilation step (8-connected), separable: rows, then columns."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    wide = grown.copy()
    wide[:, 1:] |= grown[:, :-1]
    wide[:, :-1] |= grown[:, 1:]
    return wide


def sample_bilinear(image: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """An (h, w, C) image sampled at (..., 2) pixel positions (x, y; centres at +0.5), clamped at the border:
    (..., C) float64."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    x = np.clip(pixels[..., 0] - 0.5, 0.0, w - 1.0)
    y = np.clip(pixels[..., 1] - 0.5, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.intp), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.intp), max(h - 2, 0))
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    # Flat gathers (np.take) of the four neighbours: much faster than indexing rows and columns apart.
    flat = image.reshape(h * w, -1)
    corner = y0 * w + x0
    right, down = min(1, w - 1), (w if h > 1 else 0)
    top = np.take(flat, corner, axis=0) * (1.0 - fx) + np.take(flat, corner + right, axis=0) * fx
    bottom = np.take(flat, corner + down, axis=0) * (1.0 - fx) + np.take(flat, corner + down + right, axis=0) * fx
    return top * (1.0 - fy) + bottom * fy


def view_weights(
    camera: Camera,
    positions: np.ndarray,
    normals: np.ndarray,
    depth: np.ndarray,
    *,
    power: float = 2.0,
    feather: int = 8,
    tolerance: float = 0.01,
    jump: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """How much one camera's image counts at each of the surface points (..., 3) with unit normals (..., 3),
    given the camera's depth_buffer of the occluders: (weights (...), pixel positions (..., 2)).

    Zero outside the image, behind the camera, back-facing, or occluded (deeper than the depth buffer at its
    position by more than `tolerance` × depth); otherwise cos(normal, towards the camera) ** power times the
    silhouette_distance factor (bilinear at its position) of `feather` pixels. Uncovered texels (zero normal)
    face nowhere and weigh 0."""
    pixels, point_depth = to_pixels(camera, positions)
    cosine = (np.asarray(normals, dtype=np.float64) * camera.towards(positions)).sum(-1)
    x, y = pixels[..., 0], pixels[..., 1]
    usable = (point_depth > 0) & (cosine > 0) & (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)
    # The depth and the feather at the usable points only, in one bilinear pass over both.
    linear_depth, from_linear = _linear_depth(camera, depth)
    fields = np.stack([linear_depth, silhouette_distance(depth, feather, jump)], axis=-1)
    sampled = sample_bilinear(fields, pixels[usable])
    visible = point_depth[usable] <= from_linear(sampled[:, 0]) * (1.0 + tolerance)
    weights = np.zeros(usable.shape)
    weights[usable] = np.where(visible, cosine[usable] ** power * sampled[:, 1], 0.0)
    return weights, pixels


def _linear_depth(camera: Camera, depth: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The depth buffer as what is linear in screen space on a plane (1/depth in perspective, depth itself
    orthographic; empty pixels infinitely far), and the way back: interpolated between pixel centres, a surface
    seen at a grazing angle does not hide itself."""
    if camera.perspective:
        with np.errstate(divide="ignore"):
            return 1.0 / depth, _reciprocal
    return np.minimum(depth, 1e30), np.asarray


def _reciprocal(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / values


# ---- projection ----------------------------------------------------------------------------------------------


def project(
    previous: np.ndarray,
    views: list[tuple[np.ndarray, Camera]],
    geometry: TexelGeometry,
    occluders: np.ndarray,
    *,
    power: float = 2.0,
    feather: int = 8,
    tolerance: float = 0.01,
    jump: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Project camera images into a texture `previous` (H, W, C): (texture (H, W, C), weight_sum (H, W) float32).
    Each view is an image (camera.height, camera.width, C), top row first, and the Camera it was seen from.

    Each covered texel becomes the view_weights-weighted mean of the views' bilinear samples at its position;
    where the weights sum to 0 (and outside the UV islands) the texture is `previous` exactly. `occluders` are
    the world triangles (T, 3, 3) of everything that can hide a texel, the object itself included. The texture
    is float32 (float64 if `previous` is)."""
    previous = np.asarray(previous)
    if previous.shape[:2] != geometry.shape:
        raise ValueError(f"previous texture is {previous.shape[:2]}, the texel geometry {geometry.shape}")
    texture = previous.astype(np.result_type(previous.dtype, np.float32), copy=True)
    rows, cols = np.nonzero(geometry.covered)
    positions = geometry.position[rows, cols].astype(np.float64)
    normals = geometry.normal[rows, cols].astype(np.float64)
    total = np.zeros((len(rows), texture.shape[2]))
    weight_sum = np.zeros(len(rows))
    for image, camera in views:
        if image.shape[:2] != (camera.height, camera.width) or image.shape[2] != texture.shape[2]:
            raise ValueError(f"image {image.shape} does not fit the camera's {camera.width}×{camera.height}")
        depth = depth_buffer(camera, occluders)
        weights, pixels = view_weights(
            camera, positions, normals, depth, power=power, feather=feather, tolerance=tolerance, jump=jump
        )
        seen = weights > 0
        total[seen] += weights[seen, None] * sample_bilinear(image, pixels[seen])
        weight_sum += weights
    seen = weight_sum > 0
    texture[rows[seen], cols[seen]] = total[seen] / weight_sum[seen, None]
    weight_map = np.zeros(geometry.shape, dtype=np.float32)
    weight_map[rows, cols] = weight_sum
    return texture, weight_map
