"""Storyboard panels, the same in two places: the Sequencer's sidebar (tab "Regia") and Scene properties. The shot
list with each shot's state and progress, the active shot, the shared style, and Export. Drawing only: every
change goes through properties and operators."""

from __future__ import annotations

import bpy

from ..diffusion import KIND as DIFFUSION
from ..diffusion import round_side
from . import connection, shot_jobs
from .guides import draw_guides
from .lists import draw_list, list_row
from .owners import active_shot
from .panels import draw_diffusion_settings, draw_guidance_scale, draw_message, draw_region_source
from .preferences import draw_engine_status

_STATE_ICONS = {
    "IDLE": "DOT", "STARTING": "SORTTIME", "UPLOADING": "EXPORT", "QUEUED": "SORTTIME", "RUNNING": "PLAY",
    "DONE": "CHECKMARK", "FAILED": "ERROR", "CANCELLED": "CANCEL", "INTERRUPTED": "ERROR",
}  # fmt: skip
_ACTIVE_STATES = ("STARTING", "UPLOADING", "QUEUED", "RUNNING")


@list_row("RegiaShot")
def _shot_row(layout: bpy.types.UILayout, data: object, shot: bpy.types.PropertyGroup) -> None:
    row = layout.row(align=True)
    row.prop(shot, "label", text="", emboss=False, icon=_STATE_ICONS.get(shot.job.state, "DOT"))
    if shot.job.state in ("FAILED", "INTERRUPTED") and shot.job.message:
        row.label(text=shot.job.message)  # why, where the artist looks; the Shot panel has all of it, wrapped
        return
    row.label(text=f"{shot.frame_start}-{shot.frame_end}")
    if shot.job.state in _ACTIVE_STATES:
        row.progress(text=shot.job.state.title(), factor=shot.job.fraction, type="RING")
    elif shot.image is not None:
        row.label(text=f"v{len(shot.versions)}", icon="IMAGE_DATA")


@list_row("RegiaImageItem")
def _style_image_row(layout: bpy.types.UILayout, data: object, item: bpy.types.PropertyGroup) -> None:
    layout.label(text=item.image.name if item.image else "(pick an image)", icon="BRUSH_DATA")


@list_row("RegiaShotVersion")
def _version_row(layout: bpy.types.UILayout, shot: bpy.types.PropertyGroup, item: bpy.types.PropertyGroup) -> None:
    name = item.image.name if item.image else "(deleted)"
    current = item.image is not None and item.image == shot.image
    layout.label(
        text=f"{name}  seed {item.seed or '?'}, {item.seconds:.1f} s", icon="RADIOBUT_ON" if current else "BLANK1"
    )


class _StoryboardMain:
    bl_label = "Storyboard"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        storyboard = scene.regia_storyboard
        layout.prop(storyboard, "label")
        if connection.status.state not in ("ready", "remote"):
            draw_engine_status(layout)
        col = draw_list(layout, "SHOTS", storyboard, rows=5)
        col.separator()
        col.operator("regia.storyboard_from_markers", text="", icon="MARKER_HLT")
        row = layout.row(align=True)
        row.prop(storyboard, "text", text="")
        row.operator("regia.storyboard_from_text", icon="TEXT")
        shots = storyboard.shots
        done = sum(1 for shot in shots if shot.job.state == "DONE")
        row = layout.row(align=True)
        row.scale_y = 1.5
        if shot_jobs.is_running(scene):
            row.operator("regia.storyboard_cancel", icon="CANCEL")
            layout.progress(text=f"{done} of {len(shots)} shots done", factor=done / max(1, len(shots)), type="BAR")
        else:
            row.operator("regia.storyboard_generate", icon="SEQUENCE")
        if storyboard.message:
            draw_message(layout, context, storyboard.message)


class _StoryboardShot:
    bl_label = "Shot"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_shot(context.scene.regia_storyboard) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        shot = active_shot(context.scene.regia_storyboard)
        col = layout.column()
        col.prop(shot, "label")
        row = col.row(align=True)
        row.prop(shot, "frame_start")
        row.prop(shot, "frame_end")
        col.prop(shot, "camera")
        col.prop(shot, "description")
        col.prop(shot, "negative")
        row = col.row(align=True)
        row.prop(shot, "seed")
        row.prop(shot, "lock_seed", text="", icon="LOCKED" if shot.lock_seed else "UNLOCKED")
        status = shot.job
        if status.state in _ACTIVE_STATES:
            layout.progress(text=status.message, factor=status.fraction, type="BAR")
        elif status.message:
            draw_message(layout, context, status.message, _STATE_ICONS.get(status.state, "INFO"), status.error_kind)
        row = layout.row(align=True)
        row.operator("regia.storyboard_regenerate_shot", icon="FILE_REFRESH")
        row.operator("regia.storyboard_open_shot", icon="IMAGE")
        if shot.versions:
            layout.template_list("REGIA_UL_items", "VERSIONS", shot, "versions", shot, "active_version", rows=2)
            layout.operator("regia.storyboard_use_version", icon="CHECKMARK")
        box = layout.box()
        box.prop(shot, "use_blockout")
        if shot.use_blockout:
            box.prop(shot, "blockout", expand=True)
            box.prop(shot, "blockout_weight")
            box.operator("regia.storyboard_blockout", icon="RENDER_STILL")
        _draw_shot_guides(layout, shot)
        _draw_shot_regions(layout, shot, context.scene.regia_storyboard.generator == DIFFUSION)


def _draw_shot_guides(layout: bpy.types.UILayout, shot: bpy.types.PropertyGroup) -> None:
    layout.label(text="Shot Guides")
    layout.label(text="On top of the style's", icon="INFO")
    draw_guides(layout, "SHOT_GUIDES", shot, rows=2)


def _draw_shot_regions(layout: bpy.types.UILayout, shot: bpy.types.PropertyGroup, diffusion: bool = False) -> None:
    layout.label(text="Shot Regions")
    layout.label(text="Edit only; with none, the whole frame is edited", icon="INFO")

    def add(col: bpy.types.UILayout) -> None:
        col.operator("regia.storyboard_region_add", text="", icon="BRUSH_DATA").source = "PAINT"

    draw_list(layout, "SHOT_REGIONS", shot, rows=2, add=add)
    if not 0 <= shot.active_region < len(shot.regions):
        return
    region = shot.regions[shot.active_region]
    col = layout.column()
    draw_region_source(col, region, shot, "SHOT_REGIONS")
    col.prop(region, "feather")
    if diffusion:
        draw_guidance_scale(col, region)
    col.label(text="Region Guides")
    draw_guides(col, "SHOT_REGION_GUIDES", region, rows=2)


class _StoryboardStyle:
    bl_label = "Style"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        storyboard = context.scene.regia_storyboard
        draw_list(layout, "STYLE_IMAGES", storyboard, rows=2)
        if 0 <= storyboard.active_style_image < len(storyboard.style_images):
            layout.template_ID(storyboard.style_images[storyboard.active_style_image], "image", open="image.open")
        layout.use_property_split = True
        for name in ("preset", "style_weight", "palette", "palette_weight", "prompt", "negative", "generator"):
            layout.prop(storyboard, name)
        col = layout.column(align=True)
        col.prop(storyboard, "width")
        col.prop(storyboard, "height")
        diffusion = storyboard.generator == DIFFUSION
        shots = (round_side(storyboard.width), round_side(storyboard.height))
        if diffusion and shots != (storyboard.width, storyboard.height):
            col.label(text=f"Shots are {shots[0]} x {shots[1]}: multiples of 8 for Diffusion", icon="INFO")
        steps = "diffusion_steps" if diffusion else "steps"
        for name in (steps, "seed", "seed_rule", "preview_every", "clip_choice"):
            layout.prop(storyboard, name)
        if diffusion:
            draw_diffusion_settings(layout, storyboard, strength=False)
        col = layout.column(heading="Shots")
        for name in ("channel", "default_length", "folder"):
            col.prop(storyboard, name)


class _StoryboardExport:
    bl_label = "Export"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.label(text="storyboard.json, a PNG per shot and a contact sheet", icon="INFO")
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
    *_family(_InSequencer, "sequencer"),
    *_family(_InScene, "scene"),
)
