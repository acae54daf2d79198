"""Textures from cameras: a view is the scene seen from one camera (the storyboard's blockout render), made an
ordinary Regia target whose regions are the texture object's material slots as that camera sees them (from a
z-buffer of the scene, so occluded faces are in no region) and whose guides are the texture's own, plus the
render's outline. Generate paints each view; Bake Views projects the views' latest results back into the texture
(addon/projection.py): only texels a camera sees, weighted by how squarely it sees them, feathered at silhouettes;
texels no camera sees keep the texture's latest colours. The bake is a new image, in the texture's history."""

from __future__ import annotations

from types import SimpleNamespace

import bpy
import numpy as np

from ..naming import next_result_name
from ..projection import Camera, depth_buffer, project
from . import snapshot
from .images import mark_helper, new_image, read_rgba, size_of, write_rgba
from .operators import KEY_COLORS
from .storyboard_blockout import render_blockout
from .texel_geometry import object_triangles, occluders, render_size, scene_camera
from .texture_operators import use_in_materials

NO_SLOT = -1
SAME_SURFACE = 1e-4  # relative depth difference under which a slot's surface is the nearest one


def view_size(scene: bpy.types.Scene, long_side: int) -> tuple[int, int]:
    """The render's aspect with its longer side `long_side` pixels."""
    width, height = render_size(scene)
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def visible_slots(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph, camera: Camera, uv_map: str) -> np.ndarray:
    """(h, w) the material slot of `obj` each pixel of the camera's image shows, NO_SLOT where another object is
    in front or nothing is there."""
    triangles = object_triangles(obj, depsgraph, uv_map)
    nearest = depth_buffer(camera, occluders(depsgraph))
    labels = np.full(nearest.shape, NO_SLOT, dtype=np.int32)
    for slot in np.unique(triangles.slots):
        own = depth_buffer(camera, triangles.positions[triangles.slots == slot])
        labels[np.isfinite(own) & (own <= nearest * (1 + SAME_SURFACE))] = slot
    return labels


def _region_map(labels: np.ndarray, name: str, target: str) -> bpy.types.Image:
    height, width = labels.shape
    pixels = np.zeros((height, width, 4), dtype=np.float32)
    pixels[..., 3] = 1.0
    for slot in np.unique(labels[labels != NO_SLOT]):
        pixels[labels == slot, :3] = KEY_COLORS[slot % len(KEY_COLORS)]
    image = new_image(name, width, height, (0, 0, 0, 1), alpha=False)
    write_rgba(image, pixels)
    image.pack()
    return mark_helper(image, "region map", target)


def add_view(texture: bpy.types.Image, camera_object: bpy.types.Object, long_side: int) -> bpy.types.Image:
    """A new view of `texture`'s object from `camera_object`: its image (the blockout render), a colour-key
    region per material slot the camera sees, the texture's settings and guides, and an Outline guide."""
    settings = texture.regia
    obj, scene = settings.texture_object, bpy.context.scene
    width, height = view_size(scene, long_side)
    shot = SimpleNamespace(name=f"{obj.name} from {camera_object.name}", camera=camera_object,
                           frame_start=scene.frame_current)  # fmt: skip
    blockout = render_blockout(scene, shot, width, height)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    labels = visible_slots(obj, depsgraph, scene_camera(depsgraph, camera_object, (width, height)), settings.uv_map)
    image = new_image(shot.name, width, height, (0, 0, 0, 1), alpha=False)
    write_rgba(image, blockout.render)
    image.pack()
    outline = new_image(f"{shot.name} outline", width, height, (1, 1, 1, 1), alpha=False)
    write_rgba(outline, blockout.outline)
    outline.pack()
    mark_helper(outline, "outline", image.name)

    view = image.regia
    snapshot.loads(view, snapshot.dumps(settings))  # the texture's generator, steps, guides for all regions...
    view.regions.clear()
    view.texture_object, view.uv_map, view.tileable, view.use_init, view.scale = None, "", False, True, 1.0
    view.region_map = _region_map(labels, f"{shot.name} regions", image.name)
    for region in settings.regions:
        if region.source != "MATERIAL_SLOT" or not (labels == region.slot).any():
            continue  # a slot this camera does not see has no pixels to paint
        copy = view.regions.add()
        snapshot.from_data(copy, snapshot.to_data(region))
        copy.source, copy.key_color = "COLOR_KEY", KEY_COLORS[region.slot % len(KEY_COLORS)]
    guide = view.guides.add()
    guide.kind, guide.image = "OUTLINE", outline
    item = texture.regia_views.add()
    item.camera, item.image = camera_object, image
    texture.regia_active_view = len(texture.regia_views) - 1
    image["regia_view_of"] = texture.name
    return image


def latest_result(image: bpy.types.Image) -> bpy.types.Image | None:
    history = [item.image for item in image.regia_history if item.image is not None]
    return history[-1] if history else None


def bake_views(texture: bpy.types.Image) -> tuple[bpy.types.Image, float, list[str]]:
    """Project every view's latest result into the texture: a new packed image (in the texture's history, wired
    into the materials). Returns it, the share of the object's texels some camera saw, and what to tell the
    artist (views left out, materials not wired)."""
    settings = texture.regia
    obj = settings.texture_object
    depsgraph = bpy.context.evaluated_depsgraph_get()
    views, skipped = [], []
    for view in texture.regia_views:
        result = latest_result(view.image) if view.image is not None else None
        if result is None or view.camera is None:
            skipped.append(view.image.name if view.image is not None else "(deleted view)")
            continue
        views.append((read_rgba(result)[..., :3], scene_camera(depsgraph, view.camera, size_of(result))))
    if not views:
        raise ValueError("no view has a result yet: Generate the views first")
    previous_image = latest_result(texture) or texture
    previous = read_rgba(previous_image)
    width, height = size_of(previous_image)
    geometry = object_triangles(obj, depsgraph, settings.uv_map).texels(width, height)
    baked, weights = project(previous[..., :3], views, geometry, occluders(depsgraph))
    pixels = previous.copy()
    pixels[..., :3] = baked
    name = next_result_name(texture.name, bpy.data.images.keys())
    result = new_image(name, width, height, (0, 0, 0, 1), alpha=False)
    write_rgba(result, pixels)
    result.pack()
    result["regia_target"] = texture.name
    item = texture.regia_history.add()
    item.image = result
    item.summary = f"{width}x{height}, baked from {len(views)} view{'s' if len(views) > 1 else ''}"
    texture.regia_active_history = len(texture.regia_history) - 1
    _, problems = use_in_materials(texture, result)
    seen = float((weights[geometry.covered] > 0).mean()) if geometry.covered.any() else 0.0
    return result, seen, [f"view '{name}' has no result yet: left out" for name in skipped] + problems
