"""A mesh's UV triangles and their material slots, read with foreach_get (fast, no per-loop Python), for the
texture-space masks of addon/uv_raster.py."""

from __future__ import annotations

import bpy
import numpy as np


def uv_triangles(obj: bpy.types.Object, uv_map: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 2) UVs of the mesh's triangles (its faces triangulated as Blender draws them) in `uv_map` (the active
    one when empty), and (T,) each triangle's material slot."""
    mesh = obj.data
    layer = mesh.uv_layers.get(uv_map) if uv_map else mesh.uv_layers.active
    if layer is None:
        known = ", ".join(layer.name for layer in mesh.uv_layers) or "none"
        raise ValueError(f"object '{obj.name}' has no UV map {uv_map!r} (UV maps: {known}): unwrap it first")
    mesh.calc_loop_triangles()
    triangles = mesh.loop_triangles
    count = len(triangles)
    loops = np.empty(count * 3, dtype=np.int32)
    triangles.foreach_get("loops", loops)
    slots = np.empty(count, dtype=np.int32)
    triangles.foreach_get("material_index", slots)
    uvs = np.empty(len(mesh.loops) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uvs)
    return uvs.reshape(-1, 2)[loops].reshape(count, 3, 2), slots
