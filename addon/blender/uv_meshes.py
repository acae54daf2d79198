"""A mesh's UV triangles and their material slots, read with foreach_get (fast, no per-loop Python), for the
texture-space masks of addon/uv_raster.py and the projection of addon/projection.py."""

from __future__ import annotations

import bpy
import numpy as np


def uv_triangles(obj: bpy.types.Object, uv_map: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 2) UVs of the mesh's triangles (its faces triangulated as Blender draws them) in `uv_map` (the active
    one when empty), and (T,) each triangle's material slot."""
    mesh = obj.data
    layer = uv_layer(mesh, uv_map, obj.name)
    mesh.calc_loop_triangles()
    triangles = mesh.loop_triangles
    slots = np.empty(len(triangles), dtype=np.int32)
    triangles.foreach_get("material_index", slots)
    return loop_triangle_uvs(mesh, layer), slots


def uv_layer(mesh: bpy.types.Mesh, uv_map: str, owner: str) -> bpy.types.MeshUVLoopLayer:
    """The UV map named `uv_map` (the active one when empty); a ValueError naming `owner` when there is none."""
    layer = mesh.uv_layers.get(uv_map) if uv_map else mesh.uv_layers.active
    if layer is None:
        known = ", ".join(layer.name for layer in mesh.uv_layers) or "none"
        raise ValueError(f"object '{owner}' has no UV map {uv_map!r} (UV maps: {known}): unwrap it first")
    return layer


def loop_triangle_uvs(mesh: bpy.types.Mesh, layer: bpy.types.MeshUVLoopLayer) -> np.ndarray:
    """(T, 3, 2) UVs of the mesh's loop triangles, already calculated, in one of its UV maps."""
    triangles = mesh.loop_triangles
    loops = np.empty(len(triangles) * 3, dtype=np.int32)
    triangles.foreach_get("loops", loops)
    uvs = np.empty(len(mesh.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    return uvs.reshape(-1, 2)[loops].reshape(len(triangles), 3, 2)
