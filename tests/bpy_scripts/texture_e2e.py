"""Headless texture generation through the installed Regia extension (run by tests/test_texture_addon.py).

argv: extension zip, engine python, output folder, style image A, style image B. A cube with two material slots
(its own UV unwrap) gets a texture: New Texture, a style guide per slot, Generate through a managed engine, the
result wired into both materials. Prints `REGIA-RESULT {json}` lines; writes the arrays the test measures as .npy
files into the output folder; REGIA-OK at the end.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np

ZIP, PYTHON, OUT, STYLE_A, STYLE_B = sys.argv[1:]
PACKAGE = "bl_ext.user_default.regia"


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def addon_module(name: str):
    return sys.modules[f"{PACKAGE}.addon.blender.{name}"]


def pixels(image: bpy.types.Image) -> np.ndarray:
    flat = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(image.size[1], image.size[0], 4)[::-1]  # top row first


def links_of(material: bpy.types.Material) -> list[tuple[str, str, str, str]]:
    return sorted(
        (link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier)
        for link in material.node_tree.links
    )


def material(name: str, color: tuple[float, float, float], old_image: bpy.types.Image | None) -> bpy.types.Material:
    """A Principled material; with `old_image`, an Image Texture node already feeds its Base Color."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = next(node for node in mat.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    if old_image is not None:
        node = mat.node_tree.nodes.new("ShaderNodeTexImage")
        node.name, node.image = "Old Texture", old_image
        mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def build_cube() -> bpy.types.Object:
    """The default cube's six faces and UV cross: the top and the front in slot 1 (Sky), the rest in slot 0."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    cube.name = "Crate"
    old = bpy.data.images.new("old wood", 8, 8)
    cube.data.materials.append(material("Wood", (0.4, 0.2, 0.05), old))
    cube.data.materials.append(material("Sky", (0.1, 0.2, 0.6), None))
    for polygon in cube.data.polygons:
        normal = polygon.normal
        polygon.material_index = 1 if normal.z > 0.5 or normal.y < -0.5 else 0
    return cube


def add_camera() -> bpy.types.Object:
    """A camera that sees the cube's front (Sky), right side (Wood) and top (Sky)."""
    from mathutils import Vector

    camera = bpy.data.objects.new("View", bpy.data.cameras.new("View"))
    bpy.context.scene.collection.objects.link(camera)
    camera.location = (3.5, -5.0, 3.5)
    camera.rotation_euler = (Vector((0, 0, 0)) - camera.location).to_track_quat("-Z", "Y").to_euler()
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 4.0
    sun.rotation_euler = camera.rotation_euler
    bpy.context.scene.collection.objects.link(sun)
    return camera


def blockout(camera: bpy.types.Object) -> np.ndarray:
    """The storyboard's blockout render of this camera's view (a shot at frame 1)."""
    shot = SimpleNamespace(name="Shot", camera=camera, frame_start=1)
    return addon_module("storyboard_blockout").render_blockout(bpy.context.scene, shot, 48, 32).render[..., :3]


def drive(target: bpy.types.Image, timeout: float = 300.0) -> None:
    jobs, image_jobs = addon_module("jobs"), addon_module("image_jobs")
    deadline = time.monotonic() + timeout
    while image_jobs.is_running(target):
        assert time.monotonic() < deadline, f"job did not end: {target.regia_job.state} {target.regia_job.message}"
        jobs.poll()
        time.sleep(0.05)
    jobs.poll()


def views_phase() -> None:
    """Projection: a flat colour per material as each view region's only guide, a plane hiding part of the cube
    from the camera; Bake Views must colour the texels the camera sees and leave the hidden ones as they were."""
    cube, camera = bpy.data.objects["Crate"], bpy.data.objects["View"]  # after the undo: found again by name
    texture = cube.regia_texture
    bpy.ops.mesh.primitive_plane_add(size=0.8, location=(1.4, -2.0, 1.4))
    plane = bpy.context.active_object
    plane.rotation_euler = camera.rotation_euler
    bpy.context.view_layer.objects.active = cube
    assert bpy.ops.regia.texture_view_add(camera="View", size="256") == {"FINISHED"}
    view = texture.regia_views[0].image
    settings = view.regia
    settings.guides.clear()  # the outline too: a flat colour is the only guide
    for region, color in zip(settings.regions, ("#e02010", "#1040e0"), strict=True):
        region.guides.clear()
        guide = region.guides.add()
        guide.kind, guide.colors, guide.weight = "PALETTE", color, 10.0
    settings.use_init, settings.steps, settings.lr, settings.scale = False, 60, 0.2, 0.25
    assert bpy.ops.regia.texture_views_generate() == {"FINISHED"}
    drive(view)
    previous = pixels(texture.regia_history[-1].image)[..., :3]
    assert bpy.ops.regia.texture_bake_views() == {"FINISHED"}, view.regia_job.message
    baked = texture.regia_history[-1].image
    # The weights the bake used, and those without the plane: texels the plane hides are seen in the second only.
    projection, geometry_module = sys.modules[f"{PACKAGE}.addon.projection"], addon_module("texel_geometry")
    depsgraph = bpy.context.evaluated_depsgraph_get()
    result = view.regia_history[-1].image
    cam = geometry_module.scene_camera(depsgraph, camera, tuple(result.size))
    triangles = geometry_module.object_triangles(cube, depsgraph, "")
    geometry = triangles.texels(*baked.size)
    white = [(np.ones((cam.height, cam.width, 1)), cam)]
    blank = np.zeros((*geometry.shape, 1))
    _, with_plane = projection.project(blank, white, geometry, geometry_module.occluders(depsgraph))
    _, without_plane = projection.project(blank, white, geometry, triangles.positions)
    out = Path(OUT)
    for name, array in (("baked", pixels(baked)[..., :3]), ("previous", previous), ("view", pixels(result)[..., :3]),
                        ("weights", with_plane), ("weights_unhidden", without_plane)):  # fmt: skip
        np.save(out / f"{name}.npy", array)
    np.save(out / "texel_slots", addon_module("texture_regions").slot_labels(cube, "", tuple(baked.size), 0))
    emit(
        phase="views",
        regions=[(r.name, r.source) for r in settings.regions], state=view.regia_job.state,
        baked=baked.name, history=[h.summary for h in texture.regia_history],
        feeding=[m.node_tree.nodes.active.image.name for m in cube.data.materials],
    )  # fmt: skip


def main() -> None:
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True)
    assert result == {"FINISHED"}, result
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path, prefs.device = PYTHON, "cpu"
    cube = build_cube()
    camera = add_camera()
    owners, regions_module = addon_module("owners"), addon_module("texture_regions")
    wood, sky = (bpy.data.materials[name] for name in ("Wood", "Sky"))

    before_texture = blockout(camera)
    assert bpy.ops.regia.texture_new(size="256") == {"FINISHED"}
    texture = cube.regia_texture
    settings = texture.regia
    start = pixels(texture).copy()
    in_viewport = SimpleNamespace(space_data=SimpleNamespace(type="VIEW_3D"), object=cube, scene=bpy.context.scene)
    emit(
        phase="new",
        name=texture.name, size=list(texture.size), packed=texture.packed_file is not None,
        regions=[(r.name, r.source, r.slot, r.mode) for r in settings.regions],
        uv_map=settings.uv_map, viewport_target=owners.target_image(in_viewport).name,
        image_editor_target=getattr(owners.target_image(bpy.context), "name", None),
    )  # fmt: skip

    for region, path in zip(settings.regions, (STYLE_A, STYLE_B), strict=True):
        guide = region.guides.add()
        guide.kind, guide.image = "STYLE", bpy.data.images.load(path)
    settings.scale, settings.steps, settings.seed, settings.lock_seed = 0.5, 80, 3, True
    settings.preview_every = 0
    bpy.context.scene.regia_target = texture  # the image editor's Generate acts on the same texture
    assert bpy.ops.regia.generate() == {"FINISHED"}
    drive(texture)
    status = texture.regia_job
    made = texture.regia_history[-1].image if texture.regia_history else None
    assert made is not None, (status.state, status.message)
    out = Path(OUT)
    labels = regions_module.slot_labels(cube, settings.uv_map, tuple(made.size), settings.bleed)
    np.save(out / "result.npy", pixels(made)[..., :3])
    np.save(out / "labels.npy", labels)
    np.save(out / "start.npy", start[..., :3])
    np.save(out / "blockout_before.npy", before_texture)
    np.save(out / "blockout_after.npy", blockout(camera))  # a shot re-rendered after texturing
    feeding = {}
    for mat in (wood, sky):
        bsdf = next(node for node in mat.node_tree.nodes if node.type == "BSDF_PRINCIPLED")
        link = bsdf.inputs["Base Color"].links[0]
        feeding[mat.name] = [link.from_node.bl_idname, getattr(link.from_node.image, "name", None)]
    emit(
        phase="generate",
        state=status.state, message=status.message, result=made.name, result_size=list(made.size),
        packed=made.packed_file is not None, source_unchanged=bool(np.array_equal(pixels(texture), start)),
        feeding=feeding, old_node_kept="Old Texture" in wood.node_tree.nodes,
        old_image_kept=wood.node_tree.nodes["Old Texture"].image.name == "old wood",
    )  # fmt: skip

    # Use in Materials is undoable: a restored material, wired again, then undone, is as it was.
    wiring = addon_module("material_wiring")
    wiring.restore_previous(wood)
    restored = links_of(wood)
    bpy.ops.ed.undo_push(message="before Use in Materials")
    texture.regia_active_history = 0
    used = bpy.ops.regia.texture_use_result()
    rewired = links_of(wood)
    bpy.ops.ed.undo_push(message="Use in Materials")  # what the UI does after an operator with UNDO
    bpy.ops.ed.undo()
    wood = bpy.data.materials["Wood"]  # undo reloads the data: look it up again
    flags = addon_module("texture_operators").REGIA_OT_texture_use_result.bl_options
    emit(
        phase="undo", used=sorted(used), undo_flag="UNDO" in flags, rewired=rewired != restored,
        undone=links_of(wood) == restored,
    )  # fmt: skip

    views_phase()

    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)
    assert "torch" not in sys.modules, "the add-on imported torch"
    print("REGIA-OK")


main()
