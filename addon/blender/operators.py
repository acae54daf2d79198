"""Operators: generate and cancel, regions and guides, the engine, and results (re-run, load settings)."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ..engine_client import EngineError
from ..engine_process import EngineStartError
from ..naming import mask_preview_name
from ..spec_builder import InputError, build_job
from . import engine, runtime, snapshot
from .images import new_image, read_rgba, show_in_editors, size_of, write_rgba
from .inputs import job_input, region_mask
from .lists import remove_active
from .props import GUIDE_KIND_ITEMS

# Colour keys offered in turn for new colour-key regions: far apart, easy to paint, easy to tell apart.
KEY_COLORS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 0.5, 0), (0.5, 0, 1)]


def target_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """The scene's target; else the image in this editor (a result or preview maps back to its target)."""
    image = context.scene.regia_target
    if image is None:
        space = getattr(context, "space_data", None)
        image = getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None
    if image is not None and "regia_target" in image:
        image = bpy.data.images.get(image["regia_target"], image)
    return image


def active_region(target: bpy.types.Image) -> bpy.types.PropertyGroup | None:
    settings = target.regia
    if 0 <= settings.active_region < len(settings.regions):
        return settings.regions[settings.active_region]
    return None


class _TargetOperator(bpy.types.Operator):
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return target_image(context) is not None


class REGIA_OT_generate(_TargetOperator):
    """Generate a new image from the target with the regions and guides set here; the target is never changed"""

    bl_idname = "regia.generate"
    bl_label = "Generate"

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
        if runtime.is_running(target):
            self.report({"WARNING"}, f"'{target.name}' already has a job running: cancel it first")
            return {"CANCELLED"}
        status = target.regia_job
        try:
            built = build_job(job_input(target))
        except (InputError, ValueError) as error:
            status.state, status.error_kind, status.message = "FAILED", "INPUT", str(error)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if not self._engine_available(status):
            return {"CANCELLED"}
        runtime.submit(target, built, snapshot.dumps(target.regia))
        self.report({"INFO"}, f"Regia: generating {built.width}x{built.height} from '{target.name}'")
        return {"FINISHED"}

    def _engine_available(self, status: bpy.types.PropertyGroup) -> bool:
        """Start the managed engine if needed; check a remote one answers (one call, 100 ms at most)."""
        try:
            runtime.ensure_engine()
            return True
        except (EngineError, EngineStartError) as error:
            status.state, status.error_kind, status.message = "FAILED", "UNREACHABLE", str(error)
            self.report({"ERROR"}, str(error))
            return False


class REGIA_OT_cancel(_TargetOperator):
    """Cancel the target's running job"""

    bl_idname = "regia.cancel"
    bl_label = "Cancel"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not runtime.cancel(target_image(context)):
            self.report({"WARNING"}, "No job is running for this image")
            return {"CANCELLED"}
        return {"FINISHED"}


class REGIA_OT_use_editor_image(bpy.types.Operator):
    """Make the image shown in this editor Regia's target"""

    bl_idname = "regia.use_editor_image"
    bl_label = "Use This Image"
    image: StringProperty(description="Image name (default: this editor's image)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        space = getattr(context, "space_data", None)
        image = bpy.data.images.get(self.image) if self.image else getattr(space, "image", None)
        if image is None:
            self.report({"ERROR"}, "No image to use: open one in the image editor")
            return {"CANCELLED"}
        context.scene.regia_target = bpy.data.images.get(image.get("regia_target", ""), image)
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
    layer_item: EnumProperty(name="Mask layer", items=_mask_layer_items)
    mask: StringProperty(name="Mask", description="Mask name (with 'layer', instead of choosing from a list)")
    layer: StringProperty(name="Layer", description="Layer name; empty adds every layer of the mask")

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
        settings = target_image(context).regia
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
    name: StringProperty(name="Name", default="")

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
        settings = target.regia
        name = self.name or f"paint {len(settings.regions) + 1}"
        image = new_image(f"{target.name} {name}", *size_of(target), color=(0, 0, 0, 1), alpha=False)
        region = settings.regions.add()
        region.name, region.source, region.paint_image = name, "PAINT", image
        settings.active_region = len(settings.regions) - 1
        _open_for_painting(context, image)
        return {"FINISHED"}


class REGIA_OT_region_add_color_key(_TargetOperator):
    """Add a region for one colour of the target's shared region-map image (made if missing), so one painting can
    hold several regions"""

    bl_idname = "regia.region_add_color_key"
    bl_label = "Add Colour-Key Region"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
        settings = target.regia
        if settings.region_map is None:
            settings.region_map = new_image(f"{target.name} region map", *size_of(target), (0, 0, 0, 0), alpha=True)
        used = {tuple(round(c, 3) for c in r.key_color) for r in settings.regions if r.source == "COLOR_KEY"}
        key = next((c for c in KEY_COLORS if tuple(float(v) for v in c) not in used), KEY_COLORS[0])
        region = settings.regions.add()
        region.name = f"key {len(settings.regions)}"
        region.source, region.key_color = "COLOR_KEY", key
        settings.active_region = len(settings.regions) - 1
        _open_for_painting(context, settings.region_map)
        return {"FINISHED"}


def _open_for_painting(context: bpy.types.Context, image: bpy.types.Image) -> None:
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image
        space.ui_mode = "PAINT"


class REGIA_OT_region_remove(_TargetOperator):
    """Remove the active region (its mask or paint image stays in the file)"""

    bl_idname = "regia.region_remove"
    bl_label = "Remove Region"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        removed = remove_active(target_image(context).regia, "regions", "active_region")
        return {"FINISHED"} if removed else {"CANCELLED"}


class REGIA_OT_region_move(_TargetOperator):
    """Move the active region up or down the list"""

    bl_idname = "regia.region_move"
    bl_label = "Move Region"
    bl_options = {"REGISTER", "UNDO"}
    direction: EnumProperty(items=[("UP", "Up", ""), ("DOWN", "Down", "")])

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = target_image(context).regia
        i = settings.active_region
        j = i - 1 if self.direction == "UP" else i + 1
        if not (0 <= i < len(settings.regions) and 0 <= j < len(settings.regions)):
            return {"CANCELLED"}
        settings.regions.move(i, j)
        settings.active_region = j
        return {"FINISHED"}


class REGIA_OT_region_show_mask(_TargetOperator):
    """Show the active region's mask, as the engine will get it, in the image editor"""

    bl_idname = "regia.region_show_mask"
    bl_label = "Show Mask"

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
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
            image = new_image(name, *size_of(target), (0, 0, 0, 1), alpha=False)
        pixels = read_rgba(image)
        pixels[..., :3] = mask[..., None]
        pixels[..., 3] = 1.0
        write_rgba(image, pixels)
        if context.area is None:
            show_in_editors(image)
        else:
            _show_here(context, image)
        return {"FINISHED"}


def _show_here(context: bpy.types.Context, image: bpy.types.Image) -> None:
    space = context.space_data
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image


# ---- guides -------------------------------------------------------------------------------------------------


def _guide_owner(context: bpy.types.Context, scope: str) -> bpy.types.PropertyGroup | None:
    target = target_image(context)
    return target.regia if scope == "GLOBAL" else active_region(target)


class REGIA_OT_guide_add(_TargetOperator):
    """Add a guide to the active region, or to every edit region"""

    bl_idname = "regia.guide_add"
    bl_label = "Add Guide"
    bl_options = {"REGISTER", "UNDO"}
    scope: EnumProperty(items=[("REGION", "Region", ""), ("GLOBAL", "All regions", "")], default="REGION")
    kind: EnumProperty(name="Kind", items=GUIDE_KIND_ITEMS, default="STYLE")
    text: StringProperty(name="Text")
    image: StringProperty(name="Image", description="Image name")
    weight: bpy.props.FloatProperty(name="Weight", default=1.0, min=0.0, max=100.0)

    def execute(self, context: bpy.types.Context) -> set[str]:
        owner = _guide_owner(context, self.scope)
        if owner is None:
            self.report({"ERROR"}, "Add or select a region first")
            return {"CANCELLED"}
        guide = owner.guides.add()
        guide.kind, guide.text, guide.weight = self.kind, self.text, self.weight
        if self.image:
            guide.image = bpy.data.images.get(self.image)
            if guide.image is None:
                owner.guides.remove(len(owner.guides) - 1)
                self.report({"ERROR"}, f"image: no image called {self.image!r}")
                return {"CANCELLED"}
        owner.active_guide = len(owner.guides) - 1
        return {"FINISHED"}


class REGIA_OT_guide_remove(_TargetOperator):
    """Remove the active guide"""

    bl_idname = "regia.guide_remove"
    bl_label = "Remove Guide"
    bl_options = {"REGISTER", "UNDO"}
    scope: EnumProperty(items=[("REGION", "Region", ""), ("GLOBAL", "All regions", "")], default="REGION")

    def execute(self, context: bpy.types.Context) -> set[str]:
        owner = _guide_owner(context, self.scope)
        removed = owner is not None and remove_active(owner, "guides", "active_guide")
        return {"FINISHED"} if removed else {"CANCELLED"}


class REGIA_OT_guide_new_canvas(_TargetOperator):
    """Make a new image the target's size to paint this scribble or outline guide on, and open it for painting"""

    bl_idname = "regia.guide_new_canvas"
    bl_label = "New Canvas"
    bl_options = {"REGISTER", "UNDO"}
    scope: EnumProperty(items=[("REGION", "Region", ""), ("GLOBAL", "All regions", "")], default="REGION")

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
        owner = _guide_owner(context, self.scope)
        if owner is None or not owner.guides:
            return {"CANCELLED"}
        guide = owner.guides[owner.active_guide]
        # Scribbles are strokes on transparency; outlines are dark lines on white paper.
        color, alpha = ((0, 0, 0, 0), True) if guide.kind == "SCRIBBLE" else ((1, 1, 1, 1), False)
        guide.image = new_image(f"{target.name} {guide.kind.lower()}", *size_of(target), color, alpha)
        _open_for_painting(context, guide.image)
        return {"FINISHED"}


# ---- engine ---------------------------------------------------------------------------------------------------


class _EngineStarter(bpy.types.Operator):
    """Shared by Start and Restart. Blender maps each registered class to its own RNA type, so one registered
    operator class must not subclass another."""

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            engine.start()  # stops a running one first
        except EngineStartError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        runtime.ensure_timer()
        return {"FINISHED"}


class REGIA_OT_engine_start(_EngineStarter):
    """Start the managed engine (a Python process on this computer)"""

    bl_idname = "regia.engine_start"
    bl_label = "Start Engine"


class REGIA_OT_engine_stop(bpy.types.Operator):
    """Stop the managed engine; running jobs are interrupted"""

    bl_idname = "regia.engine_stop"
    bl_label = "Stop Engine"

    def execute(self, context: bpy.types.Context) -> set[str]:
        engine.stop()
        return {"FINISHED"}


class REGIA_OT_engine_restart(_EngineStarter):
    """Restart the managed engine (e.g. after installing packages into its Python)"""

    bl_idname = "regia.engine_restart"
    bl_label = "Restart Engine"


class REGIA_OT_engine_check(bpy.types.Operator):
    """Ask the engine for its status: device, and which models are present"""

    bl_idname = "regia.engine_check"
    bl_label = "Check"

    def execute(self, context: bpy.types.Context) -> set[str]:
        engine.poll()
        message = engine.refresh_health() if engine.client() is not None else engine.status.message
        self.report({"INFO"}, message)
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
    result: StringProperty(description="Result image name (default: the active history entry)")

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
    result: StringProperty(description="Result image name (default: the active history entry)")

    def execute(self, context: bpy.types.Context) -> set[str]:
        if bpy.ops.regia.result_load_settings(result=self.result) != {"FINISHED"}:
            return {"CANCELLED"}
        result = _result_image(context, self.result)
        context.scene.regia_target = bpy.data.images[result["regia_target"]]
        return bpy.ops.regia.generate()


class REGIA_OT_report(bpy.types.Operator):
    """Show a message from a running job as a report (the timer has no operator of its own to report from)"""

    bl_idname = "regia.report"
    bl_label = "Regia Report"
    bl_options = {"INTERNAL"}
    message: StringProperty()
    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")])

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


class REGIA_OT_history_select(bpy.types.Operator):
    """Show this result in the image editor"""

    bl_idname = "regia.history_show"
    bl_label = "Show Result"
    index: IntProperty()

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = target_image(context)
        history = target.regia_history
        if not 0 <= self.index < len(history) or history[self.index].image is None:
            return {"CANCELLED"}
        target.regia_active_history = self.index
        _show_here(context, history[self.index].image)
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (
    REGIA_OT_generate,
    REGIA_OT_cancel,
    REGIA_OT_use_editor_image,
    REGIA_OT_region_add_mask_layer,
    REGIA_OT_region_add_paint,
    REGIA_OT_region_add_color_key,
    REGIA_OT_region_remove,
    REGIA_OT_region_move,
    REGIA_OT_region_show_mask,
    REGIA_OT_guide_add,
    REGIA_OT_guide_remove,
    REGIA_OT_guide_new_canvas,
    REGIA_OT_engine_start,
    REGIA_OT_engine_stop,
    REGIA_OT_engine_restart,
    REGIA_OT_engine_check,
    REGIA_OT_result_load_settings,
    REGIA_OT_result_rerun,
    REGIA_OT_report,
    REGIA_OT_history_select,
)
