"""The Image Editor sidebar tab "Regia": target, engine, Generate/Cancel and progress, regions, guides, settings,
history. Drawing only: every change goes through properties and operators."""

from __future__ import annotations

import bpy

from ..diffusion import KIND as DIFFUSION
from ..diffusion import Unlisted, resolve_model
from ..spec_builder import InputError, canvas_size
from ..ui_text import chars_that_fit, wrap
from . import connection, image_jobs, segment_operators
from .guides import draw_guides
from .lists import draw_list, list_row
from .owners import active_region, target_image
from .paths import EXTENSION_PACKAGE
from .preferences import draw_engine_status
from .texture_regions import slot_name
from .variation_operators import draw_variations

_ERROR_ICONS = {"UNREACHABLE": "UNLINKED", "MODELS": "FILE_BLANK", "INPUT": "MODIFIER", "FAILED": "ERROR"}
# Errors whose way out is in Regia's preferences: the engine's Python or address, the models it has.
_FIXED_IN_PREFERENCES = ("UNREACHABLE", "MODELS")


def wrap_width(context: bpy.types.Context) -> int:
    """How many characters of a message fit in this region, at the UI scale in use."""
    region = getattr(context, "region", None)
    return chars_that_fit(getattr(region, "width", None), bpy.context.preferences.system.ui_scale)


def draw_message(
    layout: bpy.types.UILayout, context: bpy.types.Context, text: str, icon: str = "INFO", error_kind: str = ""
) -> bpy.types.UILayout:
    """A message in a box, wrapped to the region's width; with a button to Regia's preferences when the fix is
    there. Returns the box, for more buttons."""
    box = layout.box()
    for i, line in enumerate(wrap(text, wrap_width(context))):
        box.label(text=line, icon=icon if i == 0 else "BLANK1")
    if error_kind in _FIXED_IN_PREFERENCES:
        draw_preferences_button(box)
    return box


def draw_preferences_button(layout: bpy.types.UILayout) -> None:
    """Open Blender's Preferences at Regia's entry (its engine and models)."""
    layout.operator(
        "preferences.addon_show", text="Open Regia Preferences", icon="PREFERENCES"
    ).module = EXTENSION_PACKAGE


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
        draw_generate(layout, context, target)


def draw_generate(layout: bpy.types.UILayout, context: bpy.types.Context, target: bpy.types.Image) -> None:
    """The engine's state when it is not ready, Generate (or Cancel) and the job's progress or last message."""
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
        box = draw_message(layout, context, status.message, icon, status.error_kind)
        if status.error_kind == "UNREACHABLE" and connection.is_managed():
            box.operator("regia.engine_start", icon="PLAY")


_MODE_ICONS = {"edit": "GREASEPENCIL", "keep": "LOCKED", "embolden": "LIGHT_SUN"}


@list_row("RegiaRegion")
def _region_row(layout: bpy.types.UILayout, data: object, region: bpy.types.PropertyGroup) -> None:
    row = layout.row(align=True)
    row.prop(region, "enabled", text="")
    row.prop(region, "label", text="", emboss=False, icon=_MODE_ICONS.get(region.mode, "DOT"))
    row.label(text=str(len(region.guides)) if region.mode != "keep" else "", icon="NONE")


@list_row("RegiaHistoryItem")
def _history_row(layout: bpy.types.UILayout, data: object, item: bpy.types.PropertyGroup) -> None:
    name = item.image.name if item.image else "(deleted)"
    layout.label(text=f"{name}  {item.summary}", icon="IMAGE_DATA")


def draw_region_source(
    col: bpy.types.UILayout, region: bpy.types.PropertyGroup, owner: object, list_id: str = "REGIONS"
) -> None:
    """Where a region's mask comes from; `owner` (a target's settings, a shot) holds the color keys' region map,
    `list_id` is the region's list (its New paint layer is the size of what the list's regions mask)."""
    col.prop(region, "source")
    if region.source == "MATERIAL_SLOT":
        obj = getattr(owner, "texture_object", None)
        if obj is None:
            col.label(text="Only a texture made from its object has material slots", icon="ERROR")
        else:
            col.label(text=f"{obj.name}: {slot_name(obj, region.slot)}", icon="MATERIAL")
        col.prop(region, "invert")
        return
    if region.source == "MASK_LAYER":
        col.prop(region, "mask")
        if region.mask is not None:
            col.prop_search(region, "layer", region.mask, "layers")
        return
    if region.source == "PAINT":
        row = col.row(align=True)
        row.template_ID(region, "paint_image")  # not Blender's image.new: that one is 1024x1024
        op = row.operator("regia.paint_layer_new", text="" if region.paint_image else "New", icon="FILE_NEW")
        op.list_id = list_id
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
        col.operator("regia.region_show_mask", text="", icon="IMAGE_ALPHA")  # the eye is visibility: not this
        row = layout.row()
        row.operator("regia.segment_regions", icon="MOD_EXPLODE")
        if segment_operators.is_segmenting(target):
            layout.label(text="Segmenting into parts...", icon="TIME")
        elif target.name in segment_operators.messages:
            draw_message(layout, context, segment_operators.messages[target.name], icon="ERROR")
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
        if settings.generator == DIFFUSION:
            draw_guidance_scale(col, region)
            if settings.use_init and region.mode != "keep":
                draw_own_strength(col, region)
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
        diffusion = settings.generator == DIFFUSION
        steps = "diffusion_steps" if diffusion else "steps"
        for name in ("preset", "generator", "use_init", "scale", steps):
            layout.prop(settings, name)
        row = layout.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "lock_seed", text="", icon="LOCKED" if settings.lock_seed else "UNLOCKED")
        layout.prop(settings, "preview_every")
        try:
            width, height = canvas_size(*target.size, settings.scale, settings.generator)
            note = " (multiples of 8 for Diffusion)" if diffusion else ""
            layout.label(text=f"Canvas {width} x {height}{note}")
        except InputError as error:
            layout.label(text=str(error), icon="ERROR")
        if diffusion:
            draw_diffusion_settings(layout, settings, strength=True)
        col = layout.column(heading="CLIP")
        col.prop(settings, "clip_choice")
        if diffusion:
            col.label(text="For Inspiration guides: text guides are the prompts", icon="INFO")


class REGIA_PT_settings_advanced(_TargetPanel):
    """What most jobs leave as they are: the optimizer's settings and the whole image's losses"""

    bl_idname = "REGIA_PT_settings_advanced"
    bl_label = "Advanced"
    bl_parent_id = "REGIA_PT_settings"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        settings = target_image(context).regia
        if settings.generator != DIFFUSION:  # a sampler has no optimizer
            col = layout.column(heading="Optimizer")
            for name in ("optimizer", "lr", "schedule"):
                col.prop(settings, name)
        col = layout.column(heading="Losses")
        for name in ("tv", "saturation", "symmetry"):
            col.prop(settings, name)


def draw_diffusion_settings(layout: bpy.types.UILayout, owner: bpy.types.PropertyGroup, strength: bool) -> None:
    """The diffusion generator's settings of a target or a storyboard; its model is chosen from the preferences'
    Diffusion Models list."""
    prefs = connection.preferences()
    col = layout.column(heading="Diffusion")
    col.prop_search(owner, "diffusion_model", prefs, "diffusion_models", icon="MOD_NOISE")
    chosen = resolve_model(owner.diffusion_model, connection.diffusion_entries(prefs))
    if not prefs.diffusion_models:
        col.label(text="Add a model in Regia's preferences: Diffusion Models", icon="INFO")
        draw_preferences_button(col)
    elif isinstance(chosen, Unlisted):
        col.label(text=f"Not in the Diffusion Models list: {chosen.value}", icon="ERROR")
    elif not chosen:
        col.label(text="Choose a Diffusion Model", icon="ERROR")
    col.prop(owner, "sampler")
    col.prop(owner, "cfg")
    if strength:
        sub = col.column()
        sub.active = owner.use_init  # strength says how far from the target: without it, there is none
        sub.prop(owner, "diffusion_strength")
    col.prop(owner, "guidance_every")
    col.prop(owner, "guidance_strength")


def draw_guidance_scale(layout: bpy.types.UILayout, region: bpy.types.PropertyGroup) -> None:
    """A region's own CFG scale (diffusion only): a checkbox, and the value it turns on."""
    row = layout.row(align=True)
    row.prop(region, "use_guidance_scale")
    sub = row.row(align=True)
    sub.active = region.use_guidance_scale
    sub.prop(region, "guidance_scale", text="")


def draw_own_strength(layout: bpy.types.UILayout, region: bpy.types.PropertyGroup) -> None:
    """A region's own strength (diffusion, with Start from Target): a checkbox, and the value it turns on."""
    row = layout.row(align=True)
    row.prop(region, "use_own_strength")
    sub = row.row(align=True)
    sub.active = region.use_own_strength
    sub.prop(region, "own_strength", text="")


class REGIA_PT_variations(_TargetPanel):
    bl_idname = "REGIA_PT_variations"
    bl_label = "Variations"
    bl_parent_id = "REGIA_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        draw_variations(self.layout, target_image(context))


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
        row.operator("regia.history_show", icon="IMAGE_DATA").index = target.regia_active_history
        row.operator("regia.result_load_settings", icon="IMPORT")
        row.operator("regia.result_rerun", icon="FILE_REFRESH")


CLASSES: tuple[type, ...] = (
    REGIA_PT_main,
    REGIA_PT_regions,
    REGIA_PT_global_guides,
    REGIA_PT_settings,
    REGIA_PT_settings_advanced,
    REGIA_PT_variations,
    REGIA_PT_history,
)
