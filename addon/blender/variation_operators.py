"""Generate Variations and picking one: N images of the same settings with seeds base, base + 1, ... (the base a new
seed unless the seed is locked), shown as a numbered grid; the picked one becomes a result in the target's history,
or the next target."""

from __future__ import annotations

import json

import bpy
from bpy.props import BoolProperty, IntProperty

from ..engine_client import EngineError
from ..engine_process import EngineStartError
from ..naming import next_result_name, preview_name, variations_grid_name
from ..spec_builder import InputError, build_job
from ..variations import new_seed, preset_variations, variation_seeds
from . import jobs, snapshot, variation_jobs
from .images import show_in_editors
from .inputs import job_input
from .owners import HELPER_KEY, TARGET_KEY, pin_target, target_image
from .paths import preset_names


class REGIA_OT_generate_variations(bpy.types.Operator):
    """Generate several images of these settings at once, each with its own seed, shown side by side to pick from"""

    bl_idname = "regia.generate_variations"
    bl_label = "Generate Variations"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        target = target_image(context)
        return target is not None and not variation_jobs.is_running(target)

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        settings = target.regia
        if not settings.lock_seed:
            settings.seed = new_seed()
        try:
            built = build_job(job_input(target))
            jobs.ensure_engine()
        except (InputError, ValueError, EngineError, EngineStartError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if settings.vary == "PRESET":
            try:
                presets = preset_variations(preset_names(), settings.variations)
            except ValueError as error:
                self.report({"ERROR"}, str(error))
                return {"CANCELLED"}
            variation_jobs.submit(target, built, snapshot.dumps(settings), [settings.seed] * len(presets), presets)
            self.report({"INFO"}, f"Regia: '{target.name}' in {len(presets)} presets: {', '.join(presets)}")
            return {"FINISHED"}
        seeds = variation_seeds(settings.seed, settings.variations)
        variation_jobs.submit(target, built, snapshot.dumps(settings), seeds)
        self.report({"INFO"}, f"Regia: {len(seeds)} variations of '{target.name}', seeds {seeds[0]} to {seeds[-1]}")
        return {"FINISHED"}


class REGIA_OT_variations_cancel(bpy.types.Operator):
    """Cancel the variations still running"""

    bl_idname = "regia.variations_cancel"
    bl_label = "Cancel Variations"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        target = target_image(context)
        return target is not None and variation_jobs.is_running(target)

    def execute(self, context: bpy.types.Context) -> set[str]:
        variation_jobs.cancel(pin_target(context))
        return {"FINISHED"}


class REGIA_OT_variation_pick(bpy.types.Operator):
    """Keep this variation: it becomes a result in the target's history (or, with As Target, the next target, with
    these settings)"""

    bl_idname = "regia.variation_pick"
    bl_label = "Pick Variation"
    bl_options = {"REGISTER", "UNDO"}
    index: IntProperty(name="Variation", description="Which variation (0-based)", options={"HIDDEN", "SKIP_SAVE"})
    as_target: BoolProperty(
        name="As Target", description="Make it the next target, with these settings", options={"HIDDEN", "SKIP_SAVE"}
    )

    @classmethod
    def description(cls, _context: bpy.types.Context, properties: bpy.types.OperatorProperties) -> str:
        if properties.as_target:
            return "Work on from this variation: it becomes the target, with the settings that made it"
        return "Keep this variation as a result in the target's history"

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        items = target.regia_variations
        if not 0 <= self.index < len(items) or items[self.index].image is None:
            self.report({"ERROR"}, f"Variation {self.index + 1} is not finished yet")
            return {"CANCELLED"}
        item = items[self.index]
        result = item.image
        item.image = None  # it is a result now, no longer one of the variations
        del result[HELPER_KEY]
        result.name = next_result_name(target.name, bpy.data.images.keys())
        result[TARGET_KEY], result["regia_job"] = target.name, item.status.job_id
        history = target.regia_history.add()
        spec = json.loads(result["regia_spec"])
        history.image, history.job_id = result, item.status.job_id
        history.summary = f"{spec['width']}x{spec['height']}, {spec['steps']} steps, {variation_jobs.label(item)}"
        target.regia_active_history = len(target.regia_history) - 1
        if self.as_target:
            del result[TARGET_KEY]  # a target of its own now (it stays in the old target's history)
            snapshot.loads(result.regia, result["regia_settings"])
            result.regia.seed, result.regia.lock_seed = item.seed, False  # the seed that made it
            if item.preset:
                result.regia.preset = item.preset
            context.scene.regia_target = result
        show_in_editors(result, replacing={target.name, preview_name(target.name), variations_grid_name(target.name)})
        return {"FINISHED"}


def draw_variations(layout: bpy.types.UILayout, target: bpy.types.Image) -> None:
    """The Variations panel's body: how many, the button, and each variation with its state and Pick buttons."""
    settings = target.regia
    layout.prop(settings, "vary", expand=True)
    row = layout.row(align=True)
    row.prop(settings, "variations")
    if variation_jobs.is_running(target):
        row.operator("regia.variations_cancel", text="", icon="CANCEL")
    layout.operator("regia.generate_variations", icon="IMGDISPLAY")
    for index, item in enumerate(target.regia_variations):
        row = layout.row(align=True)
        status = item.status
        state = "Done" if item.image is not None else status.message or status.state.title()
        row.label(
            text=f"{index + 1}. {variation_jobs.label(item)}: {state}", icon="CHECKMARK" if item.image else "TIME"
        )
        sub = row.row(align=True)
        sub.enabled = item.image is not None
        pick = sub.operator("regia.variation_pick", text="", icon="ADD")
        pick.index = index
        as_target = sub.operator("regia.variation_pick", text="", icon="IMAGE")
        as_target.index, as_target.as_target = index, True


CLASSES = (REGIA_OT_generate_variations, REGIA_OT_variations_cancel, REGIA_OT_variation_pick)
