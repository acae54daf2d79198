"""What addon/projection.py needs from a scene, read with foreach_get: an object's triangles in world space with
their corner (split) normals and UVs, every visible mesh's triangles as occluders, and a Camera as the render sees
it. Meshes are the evaluated ones (modifiers applied), as they render."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..projection import Camera, TexelGeometry, texel_geometry
from .uv_meshes import loop_triangle_uvs, uv_layer


@dataclass(frozen=True, eq=False)
class ObjectTriangles:
    """One object's loop triangles, all (T, 3, ...) in the same order: UVs, world corner positions, world unit
    corner normals, and each triangle's material slot."""

    uvs: np.ndarray
    positions: np.ndarray
    normals: np.ndarray
    slots: np.ndarray

    def texels(self, width: int, height: int) -> TexelGeometry:
        """The surface under each texel of a (height, width) texture in this UV map."""
        return texel_geometry(self.uvs, self.positions, self.normals, width, height)


def object_triangles(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, uv_map: str = "") -> ObjectTriangles:
    """The evaluated object's triangles in world space, with their UVs in `uv_map` (the active one when empty)."""
    if obj.type != "MESH":
        raise ValueError(f"object '{obj.name}' is not a mesh: only a mesh has a UV texture")
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        layer = uv_layer(mesh, uv_map, obj.name)
        mesh.calc_loop_triangles()
        matrix = _matrix(evaluated.matrix_world)
        triangles = mesh.loop_triangles
        slots = np.empty(len(triangles), dtype=np.int32)
        triangles.foreach_get("material_index", slots)
        return ObjectTriangles(
            uvs=loop_triangle_uvs(mesh, layer),
            positions=_world_positions(mesh, matrix),
            normals=_world_normals(mesh, matrix),
            slots=slots,
        )
    finally:
        evaluated.to_mesh_clear()


def occluders(depsgraph: bpy.types.Depsgraph) -> np.ndarray:
    """(T, 3, 3) world triangles of every visible mesh in the depsgraph's view layer, instances included: all
    that can hide a texel from a camera, the projected object too."""
    view_layer = depsgraph.view_layer
    pieces = [np.zeros((0, 3, 3))]
    for instance in depsgraph.object_instances:
        obj = instance.object
        owner = instance.parent if instance.is_instance else obj
        if obj.type != "MESH" or not owner.original.visible_get(view_layer=view_layer):
            continue
        matrix = _matrix(instance.matrix_world)  # only valid while iterating
        mesh = obj.to_mesh()
        try:
            mesh.calc_loop_triangles()
            pieces.append(_world_positions(mesh, matrix))
        finally:
            obj.to_mesh_clear()
    return np.concatenate(pieces)


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The rendered image's (width, height) in pixels: the resolution scaled by its percentage, as Blender
    rounds it."""
    render = scene.render
    percent = render.resolution_percentage
    return render.resolution_x * percent // 100, render.resolution_y * percent // 100


def scene_camera(
    depsgraph: bpy.types.Depsgraph, camera: bpy.types.Object | None = None, size: tuple[int, int] | None = None
) -> Camera:
    """A Camera for `camera` (the scene's when None) as the scene renders it: its lens, sensor fit, shift and the
    render's pixel aspect, for an image of `size` (width, height; the render size when None, and of the same
    aspect as it otherwise, or the image is stretched as a render would be)."""
    scene = depsgraph.scene
    camera = camera or scene.camera
    if camera is None or camera.type != "CAMERA":
        raise ValueError("the scene has no camera: add one or choose a camera object")
    width, height = size or render_size(scene)
    render = scene.render
    evaluated = camera.evaluated_get(depsgraph)
    projection = evaluated.calc_matrix_camera(
        depsgraph, x=width, y=height, scale_x=render.pixel_aspect_x, scale_y=render.pixel_aspect_y
    )
    world = evaluated.matrix_world
    return Camera(_matrix(projection @ world.inverted()), np.array(world.translation), width, height)


def _matrix(matrix: object) -> np.ndarray:
    """A mathutils 4×4 matrix as a numpy array, rows first."""
    return np.array([list(row) for row in matrix], dtype=np.float64)


def _world_positions(mesh: bpy.types.Mesh, matrix: np.ndarray) -> np.ndarray:
    """(T, 3, 3) world positions of the corners of the mesh's (calculated) loop triangles."""
    triangles = mesh.loop_triangles
    corners = np.empty(len(triangles) * 3, dtype=np.int32)
    triangles.foreach_get("vertices", corners)
    local = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", local)
    points = local.reshape(-1, 3).astype(np.float64)[corners]
    return (points @ matrix[:3, :3].T + matrix[:3, 3]).reshape(-1, 3, 3)


def _world_normals(mesh: bpy.types.Mesh, matrix: np.ndarray) -> np.ndarray:
    """(T, 3, 3) world unit normals at the corners of the loop triangles: their split normals (custom, smooth or
    flat, as they shade; `split_normals` exists in 4.2 and 5.0 alike), carried by the inverse transpose so they
    stay perpendicular to the surface under non-uniform scale."""
    triangles = mesh.loop_triangles
    local = np.empty(len(triangles) * 9, dtype=np.float32)
    triangles.foreach_get("split_normals", local)
    normals = local.reshape(-1, 3).astype(np.float64) @ np.linalg.inv(matrix[:3, :3])  # n @ inv(M) = inv(M).T @ n
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-30)
    return normals.reshape(-1, 3, 3)
