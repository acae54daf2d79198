"""Textures for objects: an image whose regions are the object's material slots, each slot's faces rasterised
through a UV map into texture space (addon/uv_raster.py) and bled past its islands' edges. Such an image is an
ordinary Regia target (every guide kind, keep, history, variations); this module makes one for an object and
reads a slot's mask for the job."""

from __future__ import annotations

import hashlib

import bpy
import numpy as np

from ..pixels import linear_to_srgb
from ..spec_builder import InputError
from ..uv_raster import bleed, rasterise
from .images import write_rgba
from .uv_meshes import uv_triangles

SIZES = [(str(side), f"{side} px", f"A {side} x {side} texture") for side in (256, 512, 1024, 2048)]
UNCOVERED = (0.5, 0.5, 0.5)  # texels no slot's island reaches: mid grey, as an unpainted texture
# One label map: a job reads every slot's mask from the same geometry, so it is rasterised once.
_labels: dict[tuple[object, ...], np.ndarray] = {}


def slot_name(obj: bpy.types.Object, slot: int) -> str:
    """What the artist sees for a slot: its material's name, else its number."""
    slots = obj.material_slots
    if slot < len(slots) and slots[slot].material is not None:
        return slots[slot].material.name
    return f"Slot {slot + 1}"


def slot_count(obj: bpy.types.Object) -> int:
    return max(1, len(obj.material_slots))  # a mesh without slots draws every face with slot 0


def slot_labels(obj: bpy.types.Object, uv_map: str, size: tuple[int, int], margin: int) -> np.ndarray:
    """(height, width) material slot of each texel, NO_FACE where no island (or its bleed) reaches."""
    if obj.mode == "EDIT":
        obj.update_from_editmode()  # edit-mode changes reach the mesh data only when asked
    uvs, slots = uv_triangles(obj, uv_map)
    digest = hashlib.sha1(uvs.tobytes() + slots.tobytes()).hexdigest()
    key = (obj.name, uv_map, size, margin, digest)
    if key not in _labels:
        _labels.clear()
        _labels[key] = bleed(rasterise(uvs, slots, *size), margin)
    return _labels[key]


def slot_mask(settings: bpy.types.PropertyGroup, slot: int, size: tuple[int, int], where: str) -> np.ndarray:
    """A material-slot region's mask at the texture's size, top row first."""
    obj = getattr(settings, "texture_object", None)  # a storyboard shot has none
    if obj is None or obj.type != "MESH":
        raise InputError(
            f"{where} object", "no mesh object is set for this texture",
            allowed="make the texture from the object (3D Viewport sidebar, Regia tab: New Texture)",
        )  # fmt: skip
    if slot >= slot_count(obj):
        raise InputError(
            f"{where} slot", f"object '{obj.name}' has no material slot {slot + 1}", allowed=f"1 to {slot_count(obj)}"
        )
    try:
        labels = slot_labels(obj, settings.uv_map, size, settings.bleed)
    except ValueError as exc:  # no such UV map: uv_triangles says which there are
        raise InputError(f"{where} UV map", str(exc)) from None
    return (labels == slot).astype(np.float32)


def base_color(obj: bpy.types.Object, slot: int) -> tuple[float, float, float]:
    """A slot's material colour as display values: its Principled BSDF's Base Color, else its viewport colour."""
    material = obj.material_slots[slot].material if slot < len(obj.material_slots) else None
    if material is None:
        return UNCOVERED
    linear = tuple(material.diffuse_color)[:3]
    if material.node_tree is not None:
        for node in material.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                linear = tuple(node.inputs["Base Color"].default_value)[:3]
                break
    return tuple(float(v) for v in linear_to_srgb(np.array(linear, dtype=np.float32)))


def slot_region(settings: bpy.types.PropertyGroup, slot: int) -> bpy.types.PropertyGroup | None:
    """The texture's region for material slot `slot`, if it has one."""
    return next((r for r in settings.regions if r.source == "MATERIAL_SLOT" and r.slot == slot), None)


def sync_slot_regions(settings: bpy.types.PropertyGroup, obj: bpy.types.Object) -> None:
    """One material-slot region per slot of `obj`: existing ones (and their guides) stay, by slot; regions of
    slots that are gone go; names follow the materials. Regions of other sources are left alone."""
    count = slot_count(obj)
    for index in reversed(range(len(settings.regions))):
        region = settings.regions[index]
        if region.source == "MATERIAL_SLOT" and region.slot >= count:
            settings.regions.remove(index)
    have = {region.slot: region for region in settings.regions if region.source == "MATERIAL_SLOT"}
    for slot in range(count):
        region = have.get(slot)
        if region is None:
            region = settings.regions.add()
            region.source, region.slot, region.mode = "MATERIAL_SLOT", slot, "edit"
        region.name = slot_name(obj, slot)
    settings.active_region = min(settings.active_region, len(settings.regions) - 1)


def new_texture(obj: bpy.types.Object, side: int, uv_map: str = "") -> bpy.types.Image:
    """A new packed texture target for `obj`: each slot's texels in its material's colour (the job starts from
    them), one region per slot; the object's Texture from now on."""
    image = bpy.data.images.new(f"{obj.name} Texture", side, side, alpha=False)
    settings = image.regia
    settings.texture_object, settings.uv_map, settings.use_init = obj, uv_map, True
    labels = slot_labels(obj, uv_map, (side, side), settings.bleed)
    pixels = np.ones((side, side, 4), dtype=np.float32)
    pixels[..., :3] = UNCOVERED
    for slot in range(slot_count(obj)):
        pixels[labels == slot, :3] = base_color(obj, slot)
    write_rgba(image, pixels)
    image.pack()  # the texture lives in the .blend
    sync_slot_regions(settings, obj)
    settings.active_region = 0
    obj.regia_texture = image
    return image
