"""Projection geometry read from Blender against Blender's own view (run by tests/test_projection.py): a rotated,
non-uniformly scaled, moved object with a Subdivision modifier, and a camera with a non-square, scaled render size
and a lens shift; then a cube textured by projecting a flat colour. argv: the extension zip. Prints
`REGIA-RESULT {json}` lines, and REGIA-OK at the end."""

from __future__ import annotations

import importlib
import json
import sys

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

ZIP = sys.argv[1]
PACKAGE = "bl_ext.user_default.regia"


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def look_at(obj: bpy.types.Object, location: tuple[float, float, float], target: tuple[float, float, float]) -> None:
    obj.location = location
    obj.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()


def clear_scene() -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)


def add_camera(location, target, resolution, percent, shift=(0.0, 0.0)) -> bpy.types.Object:
    bpy.ops.object.camera_add()
    camera = bpy.context.active_object
    look_at(camera, location, target)
    camera.data.shift_x, camera.data.shift_y = shift
    scene = bpy.context.scene
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = percent
    return camera


def blender_corners(obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """World corner positions and normals of the evaluated object's loop triangles, one corner at a time with
    mathutils: the slow, plain way, to check the foreach_get and numpy one against."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.data
    mesh.calc_loop_triangles()
    matrix = evaluated.matrix_world
    normal_matrix = matrix.to_3x3().inverted().transposed()
    positions, normals = [], []
    for triangle in mesh.loop_triangles:
        for loop in triangle.loops:
            positions.append(matrix @ mesh.vertices[mesh.loops[loop].vertex_index].co)
            normals.append((normal_matrix @ mesh.corner_normals[loop].vector).normalized())
    return np.array(positions).reshape(-1, 3, 3), np.array(normals).reshape(-1, 3, 3)


def check_camera_and_geometry(projection, texels) -> None:
    clear_scene()
    bpy.ops.mesh.primitive_cube_add()
    smooth = bpy.context.active_object
    smooth.modifiers.new("subdivide", "SUBSURF").levels = 1
    bpy.ops.object.shade_smooth()
    smooth.location, smooth.rotation_euler, smooth.scale = (0.5, -0.3, 0.4), (0.3, -0.5, 1.1), (1.5, 0.7, 1.2)
    bpy.ops.mesh.primitive_cube_add(location=(-2.5, 1.0, 0.2), rotation=(0.7, 0.2, -0.4), scale=(0.4, 1.3, 0.8))
    flat = bpy.context.active_object
    bpy.ops.mesh.primitive_cube_add(location=(0, 4, 0))
    bpy.context.active_object.hide_set(True)
    camera = add_camera((7.0, -6.0, 4.0), (0.0, 0.0, 0.3), (960, 432), 50, shift=(0.12, -0.07))
    depsgraph = bpy.context.evaluated_depsgraph_get()
    scene = bpy.context.scene

    ours = texels.object_triangles(smooth, depsgraph)
    points = ours.positions.reshape(-1, 3)
    errors = {}
    for kind in ("PERSP", "ORTHO"):
        camera.data.type, camera.data.ortho_scale = kind, 5.0
        cam = texels.scene_camera(bpy.context.evaluated_depsgraph_get())
        pixels, depth = projection.to_pixels(cam, points)
        theirs = np.array([tuple(world_to_camera_view(scene, camera, Vector(p))) for p in points])
        theirs_pixels = np.stack([theirs[:, 0] * cam.width, (1 - theirs[:, 1]) * cam.height], axis=-1)
        in_frame = (theirs[:, :2] > 0).all(1) & (theirs[:, :2] < 1).all(1)
        errors[kind] = [float(np.abs(pixels - theirs_pixels).max()), float(np.abs(depth - theirs[:, 2]).max()),
                        float(in_frame.mean())]  # fmt: skip
    camera.data.type = "PERSP"
    emit(phase="camera", size=[cam.width, cam.height], points=len(points), errors=errors)

    positions, normals = blender_corners(smooth)
    flat_triangles = texels.object_triangles(flat, depsgraph)
    p = flat_triangles.positions
    faces = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    faces /= np.linalg.norm(faces, axis=-1, keepdims=True)
    flat.data.calc_loop_triangles()
    visible = len(positions) + len(flat.data.loop_triangles)
    emit(phase="geometry", triangles=len(ours.positions), blender_triangles=len(positions),
         position_error=float(np.abs(ours.positions - positions).max()),
         normal_error=float(np.abs(ours.normals - normals).max()),
         flat_normal_error=float(np.abs(flat_triangles.normals - faces[:, None]).max()),
         occluders=len(texels.occluders(depsgraph)), visible_triangles=visible)  # fmt: skip


def check_projected_cube(projection, texels, raster) -> None:
    """A cube textured with a flat red from a camera that sees three of its faces."""
    clear_scene()
    bpy.ops.mesh.primitive_cube_add(rotation=(0.0, 0.0, 0.2))
    cube = bpy.context.active_object
    add_camera((5.0, -4.0, 3.0), (0.0, 0.0, 0.0), (200, 150), 100)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    triangles = texels.object_triangles(cube, depsgraph)
    size = 256
    geometry = triangles.texels(size, size)
    cam = texels.scene_camera(depsgraph)
    red = np.full((cam.height, cam.width, 3), (1.0, 0.0, 0.0), np.float32)
    previous = np.full((size, size, 3), (0.0, 0.2, 1.0), np.float32)
    texture, weights = projection.project(previous, [(red, cam)], geometry, texels.occluders(depsgraph))
    # Which face each texel is on, and whether that face looks towards the camera (from Blender's polygons).
    mesh = cube.data
    mesh.calc_loop_triangles()
    owner = raster.rasterise(triangles.uvs, np.arange(len(triangles.uvs)), size, size)
    facing = []
    for triangle in mesh.loop_triangles:
        polygon = mesh.polygons[triangle.polygon_index]
        centre = cube.matrix_world @ polygon.center
        normal = (cube.matrix_world.to_3x3() @ polygon.normal).normalized()
        facing.append(normal.dot(cam.position - np.array(centre)) > 0)
    facing = np.array(facing)
    on = owner >= 0
    toward, away = on & facing[np.maximum(owner, 0)], on & ~facing[np.maximum(owner, 0)]
    seen = toward & (weights > 0)
    emit(phase="cube", facing_texels=int(toward.sum()), far_texels=int(away.sum()),
         facing_seen=float(seen.sum() / toward.sum()),
         facing_error=float(np.abs(texture[seen] - (1.0, 0.0, 0.0)).max()),
         far_unchanged=bool(np.array_equal(texture[away], previous[away])),
         far_weight=float(weights[away].max()))  # fmt: skip


def main() -> None:
    assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True) == {
        "FINISHED"
    }
    projection = importlib.import_module(f"{PACKAGE}.addon.projection")  # no operator uses them yet
    texels = importlib.import_module(f"{PACKAGE}.addon.blender.texel_geometry")
    raster = importlib.import_module(f"{PACKAGE}.addon.uv_raster")
    check_camera_and_geometry(projection, texels)
    check_projected_cube(projection, texels, raster)
    print("REGIA-OK")


main()
