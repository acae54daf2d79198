"""Storyboard operators: the shared style's images, a shot's guides and regions, blockouts, Generate / Regenerate /
Cancel, versions, the image editor, Export (storyboard_shots.py makes the shots). Every one acts on the context's
scene."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

from ...regia_contract.storyboard import shot_spec
from ..engine_client import EngineError
from ..engine_process import EngineStartError
from ..spec_builder import InputError
from ..storyboard import spec_blobs
from ..variations import new_seed
from . import jobs, shot_jobs
from .images import new_paint_layer
from .owners import active_shot, find_shot, shot_at, storyboard_of
from .storyboard_blockout import render_blockout, store
from .storyboard_export import export
from .storyboard_inputs import ensure_uids, prepare
from .storyboard_versions import shots_folder, use_version


class _ShotOperator(bpy.types.Operator):
    """Needs a shot: `index` (-1: the active one)."""

    index: IntProperty(default=-1, options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(storyboard_of(context).shots) > 0

    def shot(self, context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
        return shot_at(storyboard_of(context), self.index)


# ---- the style's images, a shot's guides and regions ---------------------------------------------------------------


class REGIA_OT_storyboard_region_add(_ShotOperator):
    """Add a region to the shot: a layer of a Mask, or a new paint layer the storyboard's size (white is in)"""

    bl_idname = "regia.storyboard_region_add"
    bl_label = "Add Shot Region"
    bl_options = {"REGISTER", "UNDO"}
    source: EnumProperty(
        name="Source", default="PAINT", description="Where the region's mask comes from",
        items=[("PAINT", "Paint Layer", "A new paint layer the storyboard's size (white is in)"),
               ("MASK_LAYER", "Mask Layer", "A layer of a Mask drawn in the image editor's Mask mode")],
    )  # fmt: skip
    mask: StringProperty(name="Mask", description="The Mask's name (Mask Layer only)", options={"SKIP_SAVE"})
    layer: StringProperty(name="Layer", description="The mask layer's name (Mask Layer only)", options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        storyboard, shot = storyboard_of(context), self.shot(context)
        if shot is None:
            return {"CANCELLED"}
        region = shot.regions.add()
        region.source = self.source
        if self.source == "PAINT":
            region.name = f"paint {len(shot.regions)}"
            size = (storyboard.width, storyboard.height)
            region.paint_image = new_paint_layer(f"{shot.name} {region.name}", *size, target=None)
        else:
            region.name = self.layer or "region"
            region.mask, region.layer = bpy.data.masks.get(self.mask), self.layer
        shot.active_region = len(shot.regions) - 1
        return {"FINISHED"}


class REGIA_OT_storyboard_blockout(_ShotOperator):
    """Render the shot's blockout now (Cycles, CPU, a few samples) to see what will guide it"""

    bl_idname = "regia.storyboard_blockout"
    bl_label = "Render Blockout"

    def execute(self, context: bpy.types.Context) -> set[str]:
        storyboard, shot = storyboard_of(context), self.shot(context)
        try:
            store(shot, render_blockout(context.scene, shot, storyboard.width, storyboard.height))
        except (InputError, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}


# ---- generating -------------------------------------------------------------------------------------------------


def generate(operator: bpy.types.Operator, context: bpy.types.Context, shots: list) -> set[str]:
    """Queue one job per shot. Shots that cannot be built fail with their reason; the rest go to the engine."""
    scene, storyboard = context.scene, storyboard_of(context)
    ensure_uids(storyboard)
    shots = [shot for shot in shots if not shot_jobs.is_running(scene, shot.uid)]
    if not shots:
        operator.report({"WARNING"}, "Every shot is already queued or running")
        return {"CANCELLED"}
    try:
        prepared = prepare(scene, shots)
    except InputError as error:
        storyboard.message = str(error)
        operator.report({"ERROR"}, storyboard.message)
        return {"CANCELLED"}
    for uid, message in prepared.errors.items():
        shot = find_shot(scene, uid)
        shot.job.state, shot.job.error_kind, shot.job.message = "FAILED", "INPUT", message
    if not prepared.uids:
        storyboard.message = "No shot could be built: " + "; ".join(prepared.errors.values())
        operator.report({"ERROR"}, storyboard.message)
        return {"CANCELLED"}
    try:
        jobs.ensure_engine()
    except (EngineError, EngineStartError) as error:
        for uid in prepared.uids:
            shot = find_shot(scene, uid)
            shot.job.state, shot.job.error_kind, shot.job.message = "FAILED", "UNREACHABLE", str(error)
        storyboard.message = str(error)
        operator.report({"ERROR"}, storyboard.message)
        return {"CANCELLED"}
    for index, uid in enumerate(prepared.uids):
        spec = shot_spec(prepared.storyboard, index)
        shot = find_shot(scene, uid)
        shot_jobs.submit(scene, shot, spec, spec_blobs(spec, prepared.blobs))
    jobs.poll()
    count = len(prepared.uids)
    storyboard.message = f"{count} shot{'s' if count != 1 else ''} queued"
    if prepared.errors:
        storyboard.message += f"; {len(prepared.errors)} could not be built: " + "; ".join(prepared.errors.values())
    operator.report({"WARNING"} if prepared.errors else {"INFO"}, storyboard.message)
    return {"FINISHED"}


class REGIA_OT_storyboard_generate(bpy.types.Operator):
    """Generate every shot in the shared style: one engine job per shot, all queued at once"""

    bl_idname = "regia.storyboard_generate"
    bl_label = "Generate Storyboard"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(storyboard_of(context).shots) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        return generate(self, context, list(storyboard_of(context).shots))


class REGIA_OT_storyboard_regenerate_shot(_ShotOperator):
    """Generate this shot again: a new version with a new seed (unless the shot's seed is locked), which replaces
    its strip (the old one stays in its history)"""

    bl_idname = "regia.storyboard_regenerate_shot"
    bl_label = "Regenerate Shot"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        shot = active_shot(storyboard_of(context))
        if shot is None:
            return False
        if shot_jobs.is_running(context.scene, shot.uid):
            cls.poll_message_set("The shot is already queued or running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        shot = self.shot(context)
        if shot is None:
            return {"CANCELLED"}
        if not shot.lock_seed:  # a new take; the seed it ran with shows in the shot's Seed
            shot.seed = new_seed()
        return generate(self, context, [shot])


class REGIA_OT_storyboard_cancel(bpy.types.Operator):
    """Cancel every queued or running shot of this storyboard"""

    bl_idname = "regia.storyboard_cancel"
    bl_label = "Cancel All"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not shot_jobs.cancel(context.scene):
            self.report({"WARNING"}, "No shot is queued or running")
            return {"CANCELLED"}
        jobs.poll()
        return {"FINISHED"}


# ---- results --------------------------------------------------------------------------------------------------


class REGIA_OT_storyboard_use_version(_ShotOperator):
    """Make this version the shot's image again (its strip shows it)"""

    bl_idname = "regia.storyboard_use_version"
    bl_label = "Use Version"
    bl_options = {"REGISTER", "UNDO"}
    version: IntProperty(default=-1, options={"HIDDEN", "SKIP_SAVE"}, description="-1: the shot's active version")

    def execute(self, context: bpy.types.Context) -> set[str]:
        shot = self.shot(context)
        if shot is None:
            return {"CANCELLED"}
        version = shot.active_version if self.version < 0 else self.version
        if not 0 <= version < len(shot.versions) or shot.versions[version].image is None:
            return {"CANCELLED"}
        use_version(context.scene, shot, version)
        return {"FINISHED"}


class REGIA_OT_storyboard_open_shot(_ShotOperator):
    """Make the shot's image Regia's target and show it in an image editor, to refine it region by region"""

    bl_idname = "regia.storyboard_open_shot"
    bl_label = "Open in Image Editor"
    bl_options = {"REGISTER", "UNDO"}  # it sets the scene's Target

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        shot = active_shot(storyboard_of(context))
        if shot is None or shot.image is None:
            cls.poll_message_set("The shot has no image yet: generate it first")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        shot = self.shot(context)
        if shot is None or shot.image is None:
            self.report({"ERROR"}, "The shot has no image yet: generate it first")
            return {"CANCELLED"}
        context.scene.regia_target = shot.image
        if not _show_in_an_image_editor(context, shot.image):
            self.report({"INFO"}, f"'{shot.image.name}' is Regia's target: open an Image Editor to refine it")
        return {"FINISHED"}


def _show_in_an_image_editor(context: bpy.types.Context, image: bpy.types.Image) -> bool:
    """This area if it is an image editor, else the first unpinned one on screen."""
    areas = [context.area] if context.area is not None and context.area.type == "IMAGE_EDITOR" else []
    screen = getattr(context, "screen", None)
    areas += [a for a in (screen.areas if screen else ()) if a.type == "IMAGE_EDITOR"]
    for area in areas:
        space = area.spaces.active
        if not space.use_image_pin:
            space.image = image
            area.tag_redraw()
            return True
    return False


class REGIA_OT_storyboard_export(bpy.types.Operator):
    """Export the storyboard: storyboard.json (renders without Blender: python -m engine storyboard), a numbered PNG
    per shot and a contact sheet"""

    bl_idname = "regia.storyboard_export"
    bl_label = "Export Storyboard"
    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="Where the storyboard is exported")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(storyboard_of(context).shots) > 0

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self.directory = str(shots_folder(context.scene) / "export") + "/"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        storyboard = storyboard_of(context)
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else shots_folder(context.scene) / "export"
        try:
            exported = export(context.scene, folder)
        except (InputError, OSError) as error:
            storyboard.message = f"Export failed: {error}"
            self.report({"ERROR"}, storyboard.message)
            return {"CANCELLED"}
        storyboard.message = f"Exported {len(exported.shots)} shots to {folder}"
        if exported.missing:
            storyboard.message += f" (no image yet: {', '.join(exported.missing)})"
        self.report({"INFO"}, storyboard.message)
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (
    REGIA_OT_storyboard_region_add,
    REGIA_OT_storyboard_blockout,
    REGIA_OT_storyboard_generate,
    REGIA_OT_storyboard_regenerate_shot,
    REGIA_OT_storyboard_cancel,
    REGIA_OT_storyboard_use_version,
    REGIA_OT_storyboard_open_shot,
    REGIA_OT_storyboard_export,
)
