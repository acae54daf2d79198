"""The image editor's operators: generate and cancel, the target, adding regions, showing a mask, and results
(re-run, load settings). Its lists (regions, guides) are registered here for the generic list operators (lists.py)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..engine_client import EngineError
from ..engine_process import EngineStartError
from ..naming import mask_preview_name
from ..spec_builder import InputError, build_job
from ..variations import new_seed
from . import image_jobs, jobs, snapshot
from .images import (
    mark_helper,
    new_image,
    new_paint_layer,
    open_for_painting,
    read_rgba,
    show_here,
    show_in_editors,
    size_of,
    write_rgba,
)
from .inputs import job_input, region_mask
from .lists import LISTS, Canvas, ListSpec, active_item, register_list, resolve
from .owners import active_region, pin_target, pinned_settings, target_image, target_of

# Color keys offered in turn for new colour-key regions: far apart, easy to paint, easy to tell apart.
KEY_COLORS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 0.5, 0), (0.5, 0, 1)]


class _TargetOperator(bpy.types.Operator):
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return target_image(context) is not None


class REGIA_OT_generate(_TargetOperator):
    """Generate a new image from the target with the regions and guides set here; the target is never changed"""

    bl_idname = "regia.generate"
    bl_label = "Generate"
    same_seed: BoolProperty(
        name="Same Seed", description="Keep the seed even when it is not locked (Re-run)",
        options={"HIDDEN", "SKIP_SAVE"},
    )  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        if image_jobs.is_running(target):
            self.report({"WARNING"}, f"'{target.name}' already has a job running: cancel it first")
            return {"CANCELLED"}
        level, message = start_job(target, self.same_seed)
        self.report({level}, message)
        return {"FINISHED"} if level == "INFO" else {"CANCELLED"}


def start_job(target: bpy.types.Image, same_seed: bool = False) -> tuple[str, str]:
    """Build the target's job and queue it (starting the managed engine if needed): ("INFO", what started), or
    ("ERROR", why not), the reason also shown in the target's status."""
    status = target.regia_job
    if not (target.regia.lock_seed or same_seed):  # a new take each time, unless the seed is locked
        target.regia.seed = new_seed()
    try:
        built = build_job(job_input(target))
    except (InputError, ValueError) as error:
        status.state, status.error_kind, status.message = "FAILED", "INPUT", str(error)
        return "ERROR", str(error)
    try:
        jobs.ensure_engine()  # a remote one is checked with one call, 100 ms at most
    except (EngineError, EngineStartError) as error:
        status.state, status.error_kind, status.message = "FAILED", "UNREACHABLE", str(error)
        return "ERROR", str(error)
    image_jobs.submit(target, built, snapshot.dumps(target.regia))
    return "INFO", f"Regia: generating {built.width}x{built.height} from '{target.name}'"


class REGIA_OT_cancel(_TargetOperator):
    """Cancel the target's running job"""

    bl_idname = "regia.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not image_jobs.cancel(pin_target(context)):
            self.report({"WARNING"}, "No job is running for this image")
            return {"CANCELLED"}
        return {"FINISHED"}


class REGIA_OT_use_editor_image(bpy.types.Operator):
    """Make the image shown in this editor Regia's target"""

    bl_idname = "regia.use_editor_image"
    bl_label = "Use This Image"
    bl_options = {"REGISTER", "UNDO"}
    image: StringProperty(
        name="Image", description="Image name (default: this editor's image)", options={"HIDDEN", "SKIP_SAVE"}
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        space = getattr(context, "space_data", None)
        image = bpy.data.images.get(self.image) if self.image else getattr(space, "image", None)
        if image is None:
            self.report({"ERROR"}, "No image to use: open one in the image editor")
            return {"CANCELLED"}
        target = target_of(image)  # a result, preview or paint layer: its target
        if target is None:
            self.report({"ERROR"}, f"'{image.name}' is one of Regia's helper images, not a target")
            return {"CANCELLED"}
        context.scene.regia_target = target
        return {"FINISHED"}


# ---- regions ----------------------------------------------------------------------------------------------


def _mask_layer_items(_self: object, _context: bpy.types.Context) -> list[tuple[str, str, str]]:
    items = [
        (f"{mask.name}\t{layer.name}", f"{mask.name} / {layer.name}", "")
        for mask in bpy.data.masks
        for layer in mask.layers
    ]
    _mask_layer_items.cache = items or [("", "No mask layers", "Draw a Mask in the image editor's Mask mode")]
    return _mask_layer_items.cache


class REGIA_OT_region_add_mask_layer(_TargetOperator):
    """Add a region from a mask layer (the image editor's Mask mode)"""

    bl_idname = "regia.region_add_mask_layer"
    bl_label = "Add Region from Mask Layer"
    bl_property = "layer_item"
    bl_options = {"REGISTER", "UNDO"}
    layer_item: EnumProperty(name="Mask Layer", items=_mask_layer_items, description="The mask layer to add")
    mask: StringProperty(
        name="Mask", description="Mask name (with 'layer', instead of choosing from a list)", options={"SKIP_SAVE"}
    )
    layer: StringProperty(
        name="Layer", description="Layer name; empty adds every layer of the mask", options={"SKIP_SAVE"}
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.invoke_search_popup(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        mask_name, layer_name = self.mask, self.layer
        if not mask_name and "\t" in self.layer_item:
            mask_name, layer_name = self.layer_item.split("\t", 1)
        mask = bpy.data.masks.get(mask_name)
        if mask is None:
            known = ", ".join(m.name for m in bpy.data.masks) or "none: draw one in the image editor's Mask mode"
            self.report({"ERROR"}, f"mask: no Mask called {mask_name!r}; there are: {known}")
            return {"CANCELLED"}
        layers = [mask.layers.get(layer_name)] if layer_name else list(mask.layers)
        if not layers or layers[0] is None:
            known = ", ".join(lay.name for lay in mask.layers) or "none"
            self.report({"ERROR"}, f"layer: Mask '{mask.name}' has no layer {layer_name!r}; it has: {known}")
            return {"CANCELLED"}
        settings = pin_target(context).regia
        for layer in layers:
            region = settings.regions.add()
            region.name, region.source, region.mask, region.layer = layer.name, "MASK_LAYER", mask, layer.name
        settings.active_region = len(settings.regions) - 1
        return {"FINISHED"}


class REGIA_OT_region_add_paint(_TargetOperator):
    """Add a region painted in a new grayscale image the target's size (white is in), and open it for painting"""

    bl_idname = "regia.region_add_paint"
    bl_label = "New Region Paint Layer"
    bl_options = {"REGISTER", "UNDO"}
    name: StringProperty(name="Name", default="", description="The region's name (empty: paint N)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        settings = target.regia
        name = self.name or f"paint {len(settings.regions) + 1}"
        image = new_paint_layer(f"{target.name} {name}", *size_of(target), target=target.name)
        region = settings.regions.add()
        region.name, region.source, region.paint_image = name, "PAINT", image
        settings.active_region = len(settings.regions) - 1
        open_for_painting(context, image)
        return {"FINISHED"}


class REGIA_OT_region_add_color_key(_TargetOperator):
    """Add a region for one color of the target's shared region-map image (made if missing), so one painting can
    hold several regions"""

    bl_idname = "regia.region_add_color_key"
    bl_label = "Add Color-Key Region"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        settings = target.regia
        if settings.region_map is None:
            region_map = new_image(f"{target.name} region map", *size_of(target), (0, 0, 0, 0), alpha=True)
            settings.region_map = mark_helper(region_map, "region map", target.name)
        used = {tuple(round(c, 3) for c in r.key_color) for r in settings.regions if r.source == "COLOR_KEY"}
        key = next((c for c in KEY_COLORS if tuple(float(v) for v in c) not in used), KEY_COLORS[0])
        region = settings.regions.add()
        region.name = f"key {len(settings.regions)}"
        region.source, region.key_color = "COLOR_KEY", key
        settings.active_region = len(settings.regions) - 1
        open_for_painting(context, settings.region_map)
        return {"FINISHED"}


class REGIA_OT_region_show_mask(_TargetOperator):
    """Show the active region's mask, as the engine will get it, in the image editor"""

    bl_idname = "regia.region_show_mask"
    bl_label = "Show Mask"
    bl_options = {"REGISTER", "UNDO"}  # it makes (or refreshes) the mask image

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        region = active_region(target)
        if region is None:
            self.report({"ERROR"}, "No region selected")
            return {"CANCELLED"}
        try:
            mask = region_mask(region, target.regia, size_of(target))
        except InputError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        name = mask_preview_name(target.name)
        image = bpy.data.images.get(name)
        if image is None or size_of(image) != size_of(target):
            if image is not None:
                bpy.data.images.remove(image)
            image = mark_helper(new_image(name, *size_of(target), (0, 0, 0, 1), alpha=False), "mask", target.name)
        pixels = read_rgba(image)
        pixels[..., :3] = mask[..., None]
        pixels[..., 3] = 1.0
        write_rgba(image, pixels)
        if context.area is None:
            show_in_editors(image)
        else:
            show_here(context, image)
        return {"FINISHED"}


class REGIA_OT_paint_layer_new(bpy.types.Operator):
    """Make a new black image to paint the active region's mask on (white is in), the size of the image it masks,
    and open it for painting"""

    bl_idname = "regia.paint_layer_new"
    bl_label = "New Paint Layer"
    bl_options = {"REGISTER", "UNDO"}
    list_id: StringProperty(name="List", default="REGIONS", options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return True  # which region it is for is only known from list_id: execute says when there is none

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = resolve(context, self.list_id)
        region = active_item(*found) if found is not None else None
        canvas = found[0].canvas(context) if found is not None and found[0].canvas is not None else None
        if region is None or canvas is None:
            spec = LISTS.get(self.list_id)
            self.report({"ERROR"}, spec.missing if spec is not None else f"No region list called {self.list_id!r}")
            return {"CANCELLED"}
        region.paint_image = new_paint_layer(f"{canvas.name} {region.name}", canvas.width, canvas.height, canvas.target)
        open_for_painting(context, region.paint_image)
        return {"FINISHED"}


# ---- results ----------------------------------------------------------------------------------------------------


def _result_image(context: bpy.types.Context, name: str) -> bpy.types.Image | None:
    if name:
        return bpy.data.images.get(name)
    target = target_image(context)
    history = target.regia_history
    i = target.regia_active_history
    return history[i].image if 0 <= i < len(history) else None


class REGIA_OT_result_load_settings(bpy.types.Operator):
    """Load the settings that made this result into its target"""

    bl_idname = "regia.result_load_settings"
    bl_label = "Load Settings from Result"
    bl_options = {"REGISTER", "UNDO"}
    result: StringProperty(
        name="Result", description="Result image name (default: the active history entry)",
        options={"HIDDEN", "SKIP_SAVE"},
    )  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        result = _result_image(context, self.result)
        target = bpy.data.images.get(result.get("regia_target", "")) if result is not None else None
        if target is None or "regia_settings" not in result:
            self.report({"ERROR"}, "result: not a Regia result, or its target image is gone")
            return {"CANCELLED"}
        snapshot.loads(target.regia, result["regia_settings"])
        return {"FINISHED"}


class REGIA_OT_result_rerun(bpy.types.Operator):
    """Run this result's settings again (loads them into the target, then generates)"""

    bl_idname = "regia.result_rerun"
    bl_label = "Re-run"
    result: StringProperty(
        name="Result", description="Result image name (default: the active history entry)",
        options={"HIDDEN", "SKIP_SAVE"},
    )  # fmt: skip

    def execute(self, context: bpy.types.Context) -> set[str]:
        if bpy.ops.regia.result_load_settings(result=self.result) != {"FINISHED"}:
            return {"CANCELLED"}
        result = _result_image(context, self.result)
        context.scene.regia_target = bpy.data.images[result["regia_target"]]
        return bpy.ops.regia.generate(same_seed=True)


class REGIA_OT_report(bpy.types.Operator):
    """Show a message from a running job as a report (the timer has no operator of its own to report from)"""

    bl_idname = "regia.report"
    bl_label = "Regia Report"
    bl_options = {"INTERNAL"}
    message: StringProperty(options={"HIDDEN", "SKIP_SAVE"})
    level: EnumProperty(
        items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")],
        options={"HIDDEN", "SKIP_SAVE"},
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


class REGIA_OT_history_select(bpy.types.Operator):
    """Show this result in the image editor"""

    bl_idname = "regia.history_show"
    bl_label = "Show Result"
    bl_options = {"REGISTER", "UNDO"}  # it changes the active history entry
    index: IntProperty(options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        history = target.regia_history
        if not 0 <= self.index < len(history) or history[self.index].image is None:
            return {"CANCELLED"}
        target.regia_active_history = self.index
        show_here(context, history[self.index].image)
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (
    REGIA_OT_generate,
    REGIA_OT_cancel,
    REGIA_OT_use_editor_image,
    REGIA_OT_region_add_mask_layer,
    REGIA_OT_region_add_paint,
    REGIA_OT_region_add_color_key,
    REGIA_OT_region_show_mask,
    REGIA_OT_paint_layer_new,
    REGIA_OT_result_load_settings,
    REGIA_OT_result_rerun,
    REGIA_OT_report,
    REGIA_OT_history_select,
)


# ---- the image editor's lists ------------------------------------------------------------------------------------


def _target_canvas(context: bpy.types.Context) -> Canvas | None:
    """Paint layers, scribbles and outlines are drawn over the target: its name and size."""
    target = target_image(context)
    return None if target is None else Canvas(target.name, *size_of(target), target=target.name)


# Operators resolve these lists' owners (never the panels): pinned_settings makes the editor's image the Target.
register_list("REGIONS", ListSpec(
    "region", pinned_settings, "regions", "active_region", missing="Pick a target image first",
    remove_note="its mask or paint image stays in the file", canvas=_target_canvas,
))  # fmt: skip
register_list("REGION_GUIDES", ListSpec(
    "guide", lambda context: active_region(pin_target(context)), "guides", "active_guide",
    missing="Add or select a region first", canvas=_target_canvas,
))  # fmt: skip
register_list("GUIDES", ListSpec(
    "guide for all regions", pinned_settings, "guides", "active_guide", missing="Pick a target image first",
    canvas=_target_canvas,
))  # fmt: skip
