"""Texture-space masks against Blender's own bake (run by tests/test_uv_raster.py): a cube with two material
slots, its UVs rasterised by addon/uv_raster.py, and Cycles baking each slot's flat emission colour into an image
of the same size. argv: the extension zip. Prints `REGIA-RESULT {json}` lines, and REGIA-OK at the end."""

from __future__ import annotations

import importlib
import json
import sys

import bpy
import numpy as np

ZIP = sys.argv[1]
PACKAGE = "bl_ext.user_default.regia"
SIZE = 128
COLOURS = [(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0)]


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def main() -> None:
    assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True) == {
        "FINISHED"
    }
    raster = importlib.import_module(f"{PACKAGE}.addon.uv_raster")  # nothing in the add-on uses them yet
    meshes = importlib.import_module(f"{PACKAGE}.addon.blender.uv_meshes")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    bake = bpy.data.images.new("bake", SIZE, SIZE, alpha=False, float_buffer=True)
    bake.generated_color = (0, 0, 0, 1)
    for index, colour in enumerate(COLOURS):
        material = bpy.data.materials.new(f"slot{index}")
        material.use_nodes = True
        nodes = material.node_tree.nodes
        nodes.clear()
        emission = nodes.new("ShaderNodeEmission")
        emission.inputs["Color"].default_value = colour
        output = nodes.new("ShaderNodeOutputMaterial")
        material.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
        target = nodes.new("ShaderNodeTexImage")  # the image a bake writes into: the active Image Texture node
        target.image = bake
        nodes.active = target
        cube.data.materials.append(material)
    for polygon in cube.data.polygons:  # the top and one side in slot 1, the rest in slot 0
        polygon.material_index = 1 if polygon.normal.z > 0.5 or polygon.normal.x > 0.5 else 0
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples = "CPU", 1
    bpy.ops.object.bake(type="EMIT", margin=0, use_clear=True)
    flat = np.empty(SIZE * SIZE * 4, dtype=np.float32)
    bake.pixels.foreach_get(flat)
    baked = flat.reshape(SIZE, SIZE, 4)[::-1]  # top-down
    theirs = np.full((SIZE, SIZE), -1)
    theirs[baked[..., 0] > 0.5] = 0
    theirs[baked[..., 1] > 0.5] = 1
    uvs, slots = meshes.uv_triangles(cube)
    ours = raster.rasterise(uvs, slots, SIZE, SIZE)
    ious = []
    for slot in range(2):
        a, b = ours == slot, theirs == slot
        ious.append(float((a & b).sum() / max(1, (a | b).sum())))
    grown = raster.bleed(ours, 4)
    outside = ours == raster.NO_FACE
    emit(phase="bake", ious=ious, covered=float((ours >= 0).mean()), triangles=len(slots),
         bled=int((grown[outside] >= 0).sum()), kept=bool((grown[~outside] == ours[~outside]).all()))  # fmt: skip
    print("REGIA-OK")


main()
