"""The Image Editor sidebar tab "Regia": target, engine, Generate/Cancel and progress, regions, guides, settings,
history. Drawing only: every change goes through properties and operators."""

from __future__ import annotations

import bpy

from . import connection, image_jobs
from .guides import draw_guides
from .lists import draw_list, list_row
from .owners import active_region, target_image
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
        if connection.status.state not in ("ready", "remote"):
            draw_engine_status(layout)
        status = target.regia_job
        row = layout.row(align=True)
        row.scale_y = 1.5
        if image_jobs.is_running(target):
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


_MODE_ICONS = {"edit": "GREASEPENCIL", "keep": "LOCKED", "embolden": "LIGHT_SUN"}


@list_row("RegiaRegion")
def _region_row(layout: bpy.types.UILayout, data: object, region: bpy.types.PropertyGroup) -> None:
    row = layout.row(align=True)
    row.prop(region, "enabled", text="")
    row.prop(region, "name", text="", emboss=False, icon=_MODE_ICONS.get(region.mode, "DOT"))
    row.label(text=str(len(region.guides)) if region.mode != "keep" else "", icon="NONE")


@list_row("RegiaHistoryItem")
def _history_row(layout: bpy.types.UILayout, data: object, item: bpy.types.PropertyGroup) -> None:
    name = item.image.name if item.image else "(deleted)"
    layout.label(text=f"{name}  {item.summary}", icon="IMAGE_DATA")


def draw_region_source(col: bpy.types.UILayout, region: bpy.types.PropertyGroup, owner: object) -> None:
    """Where a region's mask comes from; `owner` (a target's settings, a shot) holds the colour keys' region map."""
    col.prop(region, "source")
    if region.source == "MASK_LAYER":
        col.prop(region, "mask")
        if region.mask is not None:
            col.prop_search(region, "layer", region.mask, "layers")
        return
    if region.source == "PAINT":
        col.template_ID(region, "paint_image", new="image.new")
    else:
        col.prop(owner, "region_map")
        col.prop(region, "key_color")
    col.prop(region, "invert")


def _region_adders(col: bpy.types.UILayout) -> None:
    col.operator("regia.region_add_mask_layer", text="", icon="MOD_MASK")
    col.operator("regia.region_add_paint", text="", icon="BRUSH_DATA")
    col.operator("regia.region_add_color_key", text="", icon="COLOR")


class REGIA_PT_regions(_TargetPanel):
    bl_idname = "REGIA_PT_regions"
    bl_label = "Regions"
    bl_parent_id = "REGIA_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        target = target_image(context)
        settings = target.regia
        col = draw_list(layout, "REGIONS", settings, rows=4, add=_region_adders)
        col.separator()
        col.operator("regia.region_show_mask", text="", icon="HIDE_OFF")
        if not settings.regions:
            layout.label(text="No regions: global guides repaint the whole image", icon="INFO")
        region = active_region(target)
        if region is None:
            return
        col = layout.column()
        col.prop(region, "mode", expand=True)
        draw_region_source(col, region, settings)
        col.prop(region, "feather")
        if region.mode == "embolden":
            col.prop(region, "strength")
        if region.mode == "keep":
            layout.label(text="A keep region stays exactly as in the target", icon="LOCKED")
        else:
            layout.label(text="Region Guides")
            draw_guides(layout, "REGION_GUIDES", region)


class REGIA_PT_global_guides(_TargetPanel):
    bl_idname = "REGIA_PT_global_guides"
    bl_label = "Guides for All Regions"
    bl_parent_id = "REGIA_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        draw_guides(self.layout, "GUIDES", target_image(context).regia)


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


class REGIA_PT_history(_TargetPanel):
    bl_idname = "REGIA_PT_history"
    bl_label = "History"
    bl_parent_id = "REGIA_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        target = target_image(context)
        layout.template_list(
            "REGIA_UL_items", "HISTORY", target, "regia_history", target, "regia_active_history", rows=3
        )
        row = layout.row(align=True)
        row.operator("regia.history_show", icon="HIDE_OFF").index = target.regia_active_history
        row.operator("regia.result_load_settings", icon="IMPORT")
        row.operator("regia.result_rerun", icon="FILE_REFRESH")


CLASSES: tuple[type, ...] = (
    REGIA_PT_main,
    REGIA_PT_regions,
    REGIA_PT_global_guides,
    REGIA_PT_settings,
    REGIA_PT_history,
)
