"""The Image Editor sidebar tab "Regia": target, engine, Generate/Cancel and progress, regions, guides, settings,
history. Drawing only: every change goes through properties and operators."""

from __future__ import annotations

import bpy

from . import engine, runtime
from .operators import active_region, target_image
from .preferences import _wrap, draw_engine_status

_ERROR_ICONS = {"UNREACHABLE": "UNLINKED", "MODELS": "FILE_BLANK", "INPUT": "MODIFIER", "FAILED": "ERROR"}


class _RegiaPanel(bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Regia"


class _TargetPanel(_RegiaPanel):
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return target_image(context) is not None


class REGIA_PT_main(_RegiaPanel):
    bl_idname = "REGIA_PT_main"
    bl_label = "Regia"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.prop(context.scene, "regia_target", text="Target")
        row.operator("regia.use_editor_image", text="", icon="EYEDROPPER")
        target = target_image(context)
        if target is None:
            layout.label(text="Open or pick an image to work on", icon="INFO")
            return
        if engine.status.state not in ("ready", "remote"):
            draw_engine_status(layout)
        status = target.regia_job
        row = layout.row(align=True)
        row.scale_y = 1.5
        if runtime.is_running(target):
            row.operator("regia.cancel", icon="CANCEL")
        else:
            row.operator("regia.generate", icon="SHADERFX")
        if status.state in ("STARTING", "UPLOADING", "QUEUED", "RUNNING"):
            eta = f", {status.eta_seconds:.0f} s left" if status.eta_seconds > 0 else ""
            layout.progress(text=f"{status.message}{eta}", factor=status.fraction, type="BAR")
        elif status.state != "IDLE" and status.message:
            icon = _ERROR_ICONS.get(status.error_kind, "CHECKMARK" if status.state == "DONE" else "INFO")
            box = layout.box()
            for i, line in enumerate(_wrap(status.message, 48)):
                box.label(text=line, icon=icon if i == 0 else "BLANK1")
            if status.error_kind == "UNREACHABLE":
                box.operator("regia.engine_start", icon="PLAY")


class REGIA_UL_regions(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        icons = {"edit": "GREASEPENCIL", "keep": "LOCKED", "embolden": "LIGHT_SUN"}
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "name", text="", emboss=False, icon=icons.get(item.mode, "DOT"))
        row.label(text=str(len(item.guides)) if item.mode != "keep" else "", icon="NONE")


class REGIA_UL_guides(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        row = layout.row(align=True)
        label = (
            item.text
            if item.kind in ("TEXT", "NEGATIVE_TEXT")
            else item.colors
            if item.kind == "PALETTE"
            else (item.image.name if item.image else "(no image)")
        )
        kind = item.bl_rna.properties["kind"].enum_items[item.kind]
        row.label(text=f"{kind.name}: {label}", icon=kind.icon)
        row.prop(item, "weight", text="", emboss=False)


def _draw_guides(layout: bpy.types.UILayout, owner: bpy.types.PropertyGroup, scope: str) -> None:
    row = layout.row()
    row.template_list("REGIA_UL_guides", scope, owner, "guides", owner, "active_guide", rows=3)
    col = row.column(align=True)
    col.operator_menu_enum("regia.guide_add", "kind", text="", icon="ADD").scope = scope
    col.operator("regia.guide_remove", text="", icon="REMOVE").scope = scope
    if not 0 <= owner.active_guide < len(owner.guides):
        return
    guide = owner.guides[owner.active_guide]
    col = layout.column()
    col.prop(guide, "kind")
    col.prop(guide, "weight")
    if guide.kind in ("TEXT", "NEGATIVE_TEXT"):
        col.prop(guide, "text")
    elif guide.kind == "PALETTE":
        col.prop(guide, "colors")
    else:
        row = col.row(align=True)
        row.template_ID(guide, "image", open="image.open")
        if guide.kind in ("SCRIBBLE", "OUTLINE"):
            col.operator("regia.guide_new_canvas", icon="BRUSH_DATA").scope = scope


class REGIA_PT_regions(_TargetPanel):
    bl_idname = "REGIA_PT_regions"
    bl_label = "Regions"
    bl_parent_id = "REGIA_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        target = target_image(context)
        settings = target.regia
        row = layout.row()
        row.template_list("REGIA_UL_regions", "", settings, "regions", settings, "active_region", rows=4)
        col = row.column(align=True)
        col.operator("regia.region_add_mask_layer", text="", icon="MOD_MASK")
        col.operator("regia.region_add_paint", text="", icon="BRUSH_DATA")
        col.operator("regia.region_add_color_key", text="", icon="COLOR")
        col.operator("regia.region_remove", text="", icon="REMOVE")
        col.separator()
        col.operator("regia.region_move", text="", icon="TRIA_UP").direction = "UP"
        col.operator("regia.region_move", text="", icon="TRIA_DOWN").direction = "DOWN"
        col.separator()
        col.operator("regia.region_show_mask", text="", icon="HIDE_OFF")
        if not settings.regions:
            layout.label(text="No regions: global guides repaint the whole image", icon="INFO")
        region = active_region(target)
        if region is None:
            return
        col = layout.column()
        col.prop(region, "mode", expand=True)
        col.prop(region, "source")
        if region.source == "MASK_LAYER":
            col.prop(region, "mask")
            if region.mask is not None:
                col.prop_search(region, "layer", region.mask, "layers")
        elif region.source == "PAINT":
            col.template_ID(region, "paint_image", new="image.new")
            col.prop(region, "invert")
        else:
            col.prop(settings, "region_map")
            col.prop(region, "key_color")
            col.prop(region, "invert")
        col.prop(region, "feather")
        if region.mode == "embolden":
            col.prop(region, "strength")
        if region.mode == "keep":
            layout.label(text="A keep region stays exactly as in the target", icon="LOCKED")
        else:
            layout.label(text="Guides for this region:")
            _draw_guides(layout, region, "REGION")


class REGIA_PT_global_guides(_TargetPanel):
    bl_idname = "REGIA_PT_global_guides"
    bl_label = "Guides for All Regions"
    bl_parent_id = "REGIA_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        _draw_guides(self.layout, target_image(context).regia, "GLOBAL")


class REGIA_PT_settings(_TargetPanel):
    bl_idname = "REGIA_PT_settings"
    bl_label = "Settings"
    bl_parent_id = "REGIA_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        target = target_image(context)
        settings = target.regia
        for name in ("preset", "generator", "use_init", "scale", "steps", "seed", "preview_every"):
            layout.prop(settings, name)
        width, height = target.size
        layout.label(text=f"Canvas {round(width * settings.scale)} x {round(height * settings.scale)}")
        col = layout.column(heading="Optimiser")
        for name in ("optimizer", "lr", "schedule"):
            col.prop(settings, name)
        col = layout.column(heading="Losses")
        for name in ("tv", "saturation", "symmetry"):
            col.prop(settings, name)
        col = layout.column(heading="CLIP")
        col.prop(settings, "clip_model")
        col.prop(settings, "clip_weights")


class REGIA_UL_history(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        name = item.image.name if item.image else "(deleted)"
        layout.label(text=f"{name}  {item.summary}", icon="IMAGE_DATA")


class REGIA_PT_history(_TargetPanel):
    bl_idname = "REGIA_PT_history"
    bl_label = "History"
    bl_parent_id = "REGIA_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        target = target_image(context)
        layout.template_list("REGIA_UL_history", "", target, "regia_history", target, "regia_active_history", rows=3)
        row = layout.row(align=True)
        row.operator("regia.history_show", icon="HIDE_OFF").index = target.regia_active_history
        row.operator("regia.result_load_settings", icon="IMPORT")
        row.operator("regia.result_rerun", icon="FILE_REFRESH")


CLASSES: tuple[type, ...] = (
    REGIA_UL_regions,
    REGIA_UL_guides,
    REGIA_UL_history,
    REGIA_PT_main,
    REGIA_PT_regions,
    REGIA_PT_global_guides,
    REGIA_PT_settings,
    REGIA_PT_history,
)
