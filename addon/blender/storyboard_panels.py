"""Storyboard panels, the same in two places: the Sequencer's sidebar (tab "Regia") and Scene properties. The shot
list with each shot's state and progress, the active shot, the shared style, and Export. Drawing only: every
change goes through properties and operators."""

from __future__ import annotations

import bpy

from . import engine, storyboard_runtime
from .preferences import _wrap, draw_engine_status
from .storyboard_operators import active_shot

_STATE_ICONS = {
    "IDLE": "DOT", "STARTING": "SORTTIME", "UPLOADING": "EXPORT", "QUEUED": "SORTTIME", "RUNNING": "PLAY",
    "DONE": "CHECKMARK", "FAILED": "ERROR", "CANCELLED": "CANCEL", "INTERRUPTED": "ERROR",
}  # fmt: skip
_ACTIVE_STATES = ("STARTING", "UPLOADING", "QUEUED", "RUNNING")


class REGIA_UL_shots(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon=_STATE_ICONS.get(item.job.state, "DOT"))
        row.label(text=f"{item.frame_start}-{item.frame_end}")
        if item.job.state in _ACTIVE_STATES:
            row.progress(text=item.job.state.title(), factor=item.job.fraction, type="RING")
        elif item.image is not None:
            row.label(text=f"v{len(item.versions)}", icon="IMAGE_DATA")


class REGIA_UL_style_images(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        layout.label(text=item.image.name if item.image else "(pick an image)", icon="BRUSH_DATA")


class REGIA_UL_shot_versions(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index) -> None:
        name = item.image.name if item.image else "(deleted)"
        current = item.image is not None and item.image == data.image
        layout.label(
            text=f"{name}  seed {item.seed or '?'}, {item.seconds:.1f} s", icon="RADIOBUT_ON" if current else "BLANK1"
        )


def _message(layout: bpy.types.UILayout, text: str, icon: str = "INFO") -> None:
    box = layout.box()
    for i, line in enumerate(_wrap(text, 48)):
        box.label(text=line, icon=icon if i == 0 else "BLANK1")


class _StoryboardMain:
    bl_label = "Storyboard"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        storyboard = scene.regia_storyboard
        layout.prop(storyboard, "name")
        if engine.status.state not in ("ready", "remote"):
            draw_engine_status(layout)
        row = layout.row()
        row.template_list("REGIA_UL_shots", "", storyboard, "shots", storyboard, "active_shot", rows=5)
        col = row.column(align=True)
        col.operator("regia.storyboard_shot_add", text="", icon="ADD")
        col.operator("regia.storyboard_shot_remove", text="", icon="REMOVE")
        col.separator()
        col.operator("regia.storyboard_shot_move", text="", icon="TRIA_UP").direction = "UP"
        col.operator("regia.storyboard_shot_move", text="", icon="TRIA_DOWN").direction = "DOWN"
        col.separator()
        col.operator("regia.storyboard_from_markers", text="", icon="MARKER_HLT")
        row = layout.row(align=True)
        row.prop(storyboard, "text", text="")
        row.operator("regia.storyboard_from_text", icon="TEXT")
        shots = storyboard.shots
        done = sum(1 for shot in shots if shot.job.state == "DONE")
        row = layout.row(align=True)
        row.scale_y = 1.5
        if storyboard_runtime.is_running(scene):
            row.operator("regia.storyboard_cancel", icon="CANCEL")
            layout.progress(text=f"{done} of {len(shots)} shots done", factor=done / max(1, len(shots)), type="BAR")
        else:
            row.operator("regia.storyboard_generate", icon="SEQUENCE")
        if storyboard.message:
            _message(layout, storyboard.message)


class _StoryboardShot:
    bl_label = "Shot"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_shot(context.scene.regia_storyboard) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        shot = active_shot(context.scene.regia_storyboard)
        col = layout.column()
        col.prop(shot, "name")
        row = col.row(align=True)
        row.prop(shot, "frame_start")
        row.prop(shot, "frame_end")
        col.prop(shot, "camera")
        col.prop(shot, "description")
        col.prop(shot, "negative")
        col.prop(shot, "seed")
        status = shot.job
        if status.state in _ACTIVE_STATES:
            layout.progress(text=status.message, factor=status.fraction, type="BAR")
        elif status.message:
            _message(layout, status.message, _STATE_ICONS.get(status.state, "INFO"))
        row = layout.row(align=True)
        row.operator("regia.storyboard_regenerate_shot", icon="FILE_REFRESH")
        row.operator("regia.storyboard_open_shot", icon="IMAGE")
        if shot.versions:
            layout.template_list("REGIA_UL_shot_versions", "", shot, "versions", shot, "active_version", rows=2)
            layout.operator("regia.storyboard_use_version", icon="CHECKMARK")
        box = layout.box()
        box.prop(shot, "use_blockout")
        if shot.use_blockout:
            box.prop(shot, "blockout", expand=True)
            box.prop(shot, "blockout_weight")
            box.operator("regia.storyboard_blockout", icon="RENDER_STILL")
        _draw_shot_guides(layout, shot)
        _draw_shot_regions(layout, shot)


def _draw_shot_guides(layout: bpy.types.UILayout, shot: bpy.types.PropertyGroup) -> None:
    layout.label(text="The shot's own guides:")
    row = layout.row()
    row.template_list("REGIA_UL_guides", "shot", shot, "guides", shot, "active_guide", rows=2)
    col = row.column(align=True)
    col.operator_menu_enum("regia.storyboard_guide_add", "kind", text="", icon="ADD")
    col.operator("regia.storyboard_guide_remove", text="", icon="REMOVE")
    if not 0 <= shot.active_guide < len(shot.guides):
        return
    guide = shot.guides[shot.active_guide]
    col = layout.column()
    col.prop(guide, "weight")
    if guide.kind in ("TEXT", "NEGATIVE_TEXT"):
        col.prop(guide, "text")
    elif guide.kind == "PALETTE":
        col.prop(guide, "colors")
    else:
        col.template_ID(guide, "image", open="image.open")


def _draw_shot_regions(layout: bpy.types.UILayout, shot: bpy.types.PropertyGroup) -> None:
    layout.label(text="Regions (edit only; none: the whole frame):")
    row = layout.row()
    row.template_list("REGIA_UL_regions", "shot", shot, "regions", shot, "active_region", rows=2)
    col = row.column(align=True)
    col.operator("regia.storyboard_region_add", text="", icon="BRUSH_DATA").source = "PAINT"
    col.operator("regia.storyboard_region_remove", text="", icon="REMOVE")
    if not 0 <= shot.active_region < len(shot.regions):
        return
    region = shot.regions[shot.active_region]
    col = layout.column()
    col.prop(region, "source")
    if region.source == "MASK_LAYER":
        col.prop(region, "mask")
        if region.mask is not None:
            col.prop_search(region, "layer", region.mask, "layers")
    elif region.source == "PAINT":
        col.template_ID(region, "paint_image", new="image.new")
    else:
        col.prop(shot, "region_map")
        col.prop(region, "key_color")
    col.prop(region, "feather")


class _StoryboardStyle:
    bl_label = "Style"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        storyboard = context.scene.regia_storyboard
        row = layout.row()
        row.template_list(
            "REGIA_UL_style_images", "", storyboard, "style_images", storyboard, "active_style_image", rows=2
        )
        col = row.column(align=True)
        col.operator("regia.storyboard_style_image_add", text="", icon="ADD")
        col.operator("regia.storyboard_style_image_remove", text="", icon="REMOVE")
        if 0 <= storyboard.active_style_image < len(storyboard.style_images):
            layout.template_ID(storyboard.style_images[storyboard.active_style_image], "image", open="image.open")
        layout.use_property_split = True
        for name in ("preset", "style_weight", "palette", "palette_weight", "prompt", "negative", "generator"):
            layout.prop(storyboard, name)
        col = layout.column(align=True)
        col.prop(storyboard, "width")
        col.prop(storyboard, "height")
        for name in ("steps", "seed", "seed_rule", "preview_every", "clip_model", "clip_weights"):
            layout.prop(storyboard, name)
        col = layout.column(heading="Shots")
        for name in ("channel", "default_length", "folder"):
            col.prop(storyboard, name)


class _StoryboardExport:
    bl_label = "Export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.label(text="storyboard.json, a PNG per shot, a contact sheet")
        layout.operator("regia.storyboard_export", icon="EXPORT")


class _InSequencer:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Regia"


class _InScene:
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "scene"


def _family(place: type, prefix: str) -> tuple[type, ...]:
    """The four panels for one place; Blender needs a class (and an id) per editor."""
    main_id = f"REGIA_PT_{prefix}_storyboard"
    classes: list[type] = [type(main_id, (place, _StoryboardMain, bpy.types.Panel), {"bl_idname": main_id})]
    for part, draw in (("shot", _StoryboardShot), ("style", _StoryboardStyle), ("export", _StoryboardExport)):
        idname = f"{main_id}_{part}"
        classes.append(type(idname, (place, draw, bpy.types.Panel), {"bl_idname": idname, "bl_parent_id": main_id}))
    return tuple(classes)


CLASSES: tuple[type, ...] = (
    REGIA_UL_shots,
    REGIA_UL_style_images,
    REGIA_UL_shot_versions,
    *_family(_InSequencer, "sequencer"),
    *_family(_InScene, "scene"),
)
