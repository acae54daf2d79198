"""Texture generation's operators: make an object's texture (a region per material slot), keep its regions in step
with the slots, and put a result into the slots' materials. Generate, Cancel, guides and history are the image
editor's own operators: in the 3D Viewport and the material properties they act on the active object's texture."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import material_wiring
from .images import size_of
from .lists import Canvas, ListSpec, register_list
from .owners import object_texture
from .texture_regions import SIZES, new_texture, slot_region, sync_slot_regions


def use_in_materials(target: bpy.types.Image, result: bpy.types.Image) -> tuple[list[str], list[str]]:
    """Wire `result` into the material of every enabled slot the job could change (not Keep): a new Image Texture
    node into Base Color, the old nodes kept. Returns the materials wired and, in the artist's words, why others
    were not."""
    settings = target.regia
    obj = settings.texture_object
    wired: list[str] = []
    problems: list[str] = []
    if obj is None:
        return wired, problems
    for region in settings.regions:
        if region.source != "MATERIAL_SLOT" or not region.enabled or region.mode == "keep":
            continue
        slots = obj.material_slots
        material = slots[region.slot].material if region.slot < len(slots) else None
        if material is None:
            problems.append(f"slot '{region.name}' has no material: add one to use the texture there")
            continue
        if material.name in wired:
            continue  # several slots may share a material
        try:
            material_wiring.wire_texture(material, result, settings.uv_map)
        except ValueError as error:
            problems.append(str(error))
            continue
        wired.append(material.name)
    return wired, problems


def _mesh_with_uvs(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = getattr(context, "object", None)
    return obj if obj is not None and obj.type == "MESH" else None


class REGIA_OT_texture_new(bpy.types.Operator):
    """Make a new texture for the active object: each material slot's faces, through the UV map, become a region
    with its own guides, starting from the slot's material color"""

    bl_idname = "regia.texture_new"
    bl_label = "New Texture"
    bl_options = {"REGISTER", "UNDO"}

    size: EnumProperty(name="Size", items=SIZES, default="1024", description="The texture's width and height")
    uv_map: StringProperty(name="UV Map", description="The UV map to lay the texture out in (empty: the active one)")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = _mesh_with_uvs(context)
        if obj is None:
            cls.poll_message_set("Select a mesh object")
            return False
        if not obj.data.uv_layers:
            cls.poll_message_set("The object has no UV map: unwrap it first (UV > Unwrap)")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "size")
        layout.prop_search(self, "uv_map", context.object.data, "uv_layers", icon="GROUP_UVS")

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = _mesh_with_uvs(context)
        try:
            image = new_texture(obj, int(self.size), self.uv_map)
        except ValueError as error:  # no such UV map: the message names the ones there are
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        regions = len(image.regia.regions)
        self.report({"INFO"}, f"Regia: texture '{image.name}' for '{obj.name}', {regions} material slot regions")
        return {"FINISHED"}


class REGIA_OT_texture_sync_slots(bpy.types.Operator):
    """Match the texture's regions to the object's material slots: new slots get a region, removed slots lose
    theirs, names follow the materials; guides stay with their slot"""

    bl_idname = "regia.texture_sync_slots"
    bl_label = "Update Slots"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _mesh_with_uvs(context) is not None and object_texture(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        texture = object_texture(context)
        sync_slot_regions(texture.regia, context.object)
        return {"FINISHED"}


class REGIA_OT_texture_use_result(bpy.types.Operator):
    """Put the selected result into the materials of the slots it changed: a new Image Texture node feeds Base
    Color; the nodes and images there were stay in the material"""

    bl_idname = "regia.texture_use_result"
    bl_label = "Use in Materials"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        texture = object_texture(context)
        if texture is None or not texture.regia_history:
            cls.poll_message_set("Generate the texture first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        texture = object_texture(context)
        index = min(max(texture.regia_active_history, 0), len(texture.regia_history) - 1)
        result = texture.regia_history[index].image
        if result is None:
            self.report({"ERROR"}, "That result image was deleted: pick another in History")
            return {"CANCELLED"}
        wired, problems = use_in_materials(texture, result)
        for problem in problems:
            self.report({"WARNING"}, problem)
        if not wired:
            self.report({"ERROR"}, "No material took the texture: every slot is Keep, disabled or without a material")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Regia: '{result.name}' is now in {', '.join(wired)}")
        return {"FINISHED"}


def _active_slot_region(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    texture, obj = object_texture(context), getattr(context, "object", None)
    return None if texture is None else slot_region(texture.regia, obj.active_material_index)


def _texture_canvas(context: bpy.types.Context) -> Canvas | None:
    texture = object_texture(context)
    return None if texture is None else Canvas(texture.name, *size_of(texture), target=texture.name)


# The material properties' guide list: the active material slot's region's guides.
register_list("SLOT_GUIDES", ListSpec(
    "guide", _active_slot_region, "guides", "active_guide", missing="Make the object's texture first (New Texture)",
    canvas=_texture_canvas,
))  # fmt: skip

CLASSES = (REGIA_OT_texture_new, REGIA_OT_texture_sync_slots, REGIA_OT_texture_use_result)
