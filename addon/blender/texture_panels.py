"""Texture generation's panels: the 3D Viewport sidebar's "Regia" tab for the active object's texture (its slots'
regions and guides, settings, variations and history are the image editor's own panels, drawn here for the
object's texture) and a short panel in the material properties for the active slot."""

from __future__ import annotations

from collections.abc import Callable

import bpy

from . import panels
from .guides import draw_guides
from .lists import draw_list
from .texture_regions import slot_name, slot_region

PARENT = "REGIA_PT_texture"


def _mesh(context: bpy.types.Context) -> bpy.types.Object | None:
    obj = getattr(context, "object", None)
    return obj if obj is not None and obj.type == "MESH" else None


def draw_texture_header(layout: bpy.types.UILayout, obj: bpy.types.Object) -> bpy.types.Image | None:
    """The object's texture (a picker, and New), or what to do to get one."""
    texture = obj.regia_texture
    row = layout.row(align=True)
    row.prop(obj, "regia_texture", text="")
    row.operator("regia.texture_new", text="" if texture else "New Texture", icon="ADD")
    if texture is None:
        layout.label(text="Each material slot becomes a region with its own guides", icon="INFO")
    elif texture.regia.texture_object not in (None, obj):
        layout.label(text=f"Made for '{texture.regia.texture_object.name}': its slots are the regions", icon="ERROR")
    return texture


class _ObjectTexturePanel(bpy.types.Panel):
    """A panel about the active mesh's texture: its picker first, then (once there is one) `draw_texture`, a
    function of the module (Blender may call draw with a self that is not an instance of the class)."""

    draw_texture: Callable[[bpy.types.UILayout, bpy.types.Context, bpy.types.Object, bpy.types.Image], None]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _mesh(context) is not None

    @classmethod
    def draw_for(cls, layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
        obj = _mesh(context)
        texture = draw_texture_header(layout, obj)
        if texture is not None:
            cls.draw_texture(layout, context, obj, texture)


class REGIA_PT_texture(_ObjectTexturePanel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Regia"
    bl_idname = PARENT
    bl_label = "Regia Texture"

    def draw(self, context: bpy.types.Context) -> None:
        REGIA_PT_texture.draw_for(self.layout, context)

    @staticmethod
    def draw_texture(
        layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object, texture: bpy.types.Image
    ) -> None:
        settings = texture.regia
        col = layout.column()
        col.use_property_split = True
        col.prop_search(settings, "uv_map", obj.data, "uv_layers", icon="GROUP_UVS")
        col.prop(settings, "bleed")
        col.prop(settings, "tileable")
        panels.draw_generate(layout, context, texture)
        row = layout.row(align=True)
        row.operator("regia.texture_use_result", icon="MATERIAL")
        row.operator("regia.texture_sync_slots", icon="FILE_REFRESH")


def _in_3d_viewport(panel: type[bpy.types.Panel]) -> type[bpy.types.Panel]:
    """A copy of the image editor's panel `panel` under Regia Texture in the 3D Viewport (its drawing reads the
    target from the context, which there is the active object's texture). A copy, not a subclass: Blender takes
    a registered panel's bl_ attributes for its own, so a subclass would not see them."""
    attributes: dict[str, object] = {}
    for klass in reversed(panel.__mro__):
        if issubclass(klass, bpy.types.Panel) and klass is not bpy.types.Panel:
            attributes |= {k: v for k, v in vars(klass).items() if not k.startswith("__")}
    idname = panel.bl_idname.replace("REGIA_PT_", "REGIA_PT_texture_")
    parent = getattr(panel, "bl_parent_id", "")
    parent = PARENT if parent == "REGIA_PT_main" else parent.replace("REGIA_PT_", "REGIA_PT_texture_")
    attributes |= {"bl_space_type": "VIEW_3D", "bl_idname": idname, "bl_parent_id": parent, "__doc__": panel.__doc__}
    return type(idname, (bpy.types.Panel,), attributes)


class REGIA_PT_texture_views(bpy.types.Panel):
    """Cameras' views of the object: generate each like an image, then bake them back into the texture"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Regia"
    bl_idname = "REGIA_PT_texture_views"
    bl_label = "Camera Views"
    bl_parent_id = PARENT
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        obj = _mesh(context)
        return obj is not None and obj.regia_texture is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        texture = _mesh(context).regia_texture

        def add(col: bpy.types.UILayout) -> None:
            col.operator("regia.texture_view_add", text="", icon="ADD")

        draw_list(layout, "TEXTURE_VIEWS", texture, rows=3, add=add)
        index = texture.regia_active_view
        view = texture.regia_views[index] if 0 <= index < len(texture.regia_views) else None
        if view is not None and view.image is not None and view.image.regia_job.message:
            layout.label(text=view.image.regia_job.message, icon="INFO")
        row = layout.row(align=True)
        row.operator("regia.texture_views_generate", icon="SHADERFX")
        row.operator("regia.texture_bake_views", icon="RENDER_STILL")


class REGIA_PT_material_texture(_ObjectTexturePanel):
    """The active material slot's region in the object's texture: whether Generate changes it, and its guides"""

    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "material"
    bl_label = "Regia Texture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        REGIA_PT_material_texture.draw_for(self.layout, context)

    @staticmethod
    def draw_texture(
        layout: bpy.types.UILayout, context: bpy.types.Context, obj: bpy.types.Object, texture: bpy.types.Image
    ) -> None:
        slot = obj.active_material_index
        region = slot_region(texture.regia, slot)
        if region is None:
            layout.label(text=f"'{slot_name(obj, slot)}' has no region: press Update Slots", icon="INFO")
            layout.operator("regia.texture_sync_slots", icon="FILE_REFRESH")
            return
        row = layout.row()
        row.prop(region, "enabled", text=f"Generate '{region.name}'")
        layout.row().prop(region, "mode", expand=True)
        if region.enabled and region.mode != "keep":
            draw_guides(layout, "SLOT_GUIDES", region)
        panels.draw_generate(layout, context, texture)
        layout.operator("regia.texture_use_result", icon="MATERIAL")


_SHARED = (
    panels.REGIA_PT_regions,
    panels.REGIA_PT_global_guides,
    panels.REGIA_PT_settings,
    panels.REGIA_PT_settings_advanced,
    panels.REGIA_PT_variations,
    panels.REGIA_PT_history,
)
CLASSES: tuple[type, ...] = (
    REGIA_PT_texture,
    *(_in_3d_viewport(p) for p in _SHARED),
    REGIA_PT_texture_views,
    REGIA_PT_material_texture,
)
