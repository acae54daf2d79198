"""Segment into Regions: the target split into parts by the engine (POST /segment), each part a colour-key region
of a new region map. The request runs on a worker thread (addon/segmentation.py); `poll_segments`, a timer,
applies what it found, so Blender never waits."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
from bpy.props import EnumProperty, IntProperty

from ..segmentation import DEFAULT_PARTS, MAX_PARTS, METHODS, MIN_PARTS, SegmentTask, part_regions
from . import connection
from .images import load_png, mark_helper, read_rgba, show_in_editors, size_of
from .owners import pin_target, target_image

POLL_SECONDS = 0.2
_tasks: dict[str, SegmentTask] = {}  # target name -> its running request
messages: dict[str, str] = {}  # target name -> the last request's failure, shown in the Regions panel


def is_segmenting(target: bpy.types.Image) -> bool:
    return target.name in _tasks


def _apply(target: bpy.types.Image, task: SegmentTask) -> None:
    """A new region map with one colour-key region per part; colour-key regions of the old map go with it."""
    settings = target.regia
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parts.png"
        path.write_bytes(task.region_map)
        region_map = load_png(path, f"{target.name} parts")
        region_map.colorspace_settings.name = "sRGB"  # key colours are display values, as colour-key regions read
        region_map.pack()  # the map lives in the .blend; the temporary file goes
    mark_helper(region_map, "region map", target.name)
    for index in reversed(range(len(settings.regions))):
        if settings.regions[index].source == "COLOR_KEY":
            settings.regions.remove(index)
    settings.region_map = region_map
    taken = {region.name for region in settings.regions}
    first = len(settings.regions)
    for part in part_regions(task.answer["parts"], taken):
        region = settings.regions.add()
        region.name, region.source, region.key_color, region.mode = part.name, "COLOR_KEY", part.key_color, "edit"
    settings.active_region = first
    show_in_editors(region_map, replacing={target.name})


def poll_segments() -> float | None:
    """Apply finished requests; the timer runs while any is left (tests call it directly)."""
    for name, task in list(_tasks.items()):
        if task.state == "RUNNING":
            continue
        del _tasks[name]
        target = bpy.data.images.get(name)
        if target is None:
            continue
        if task.state == "FAILED":
            messages[name] = task.error
        elif size_of(target) != (task.answer.get("width"), task.answer.get("height")):
            messages[name] = "the target changed size while it was being segmented: segment it again"
        else:
            _apply(target, task)
    return POLL_SECONDS if _tasks else None


class REGIA_OT_segment_regions(bpy.types.Operator):
    """Split the target into parts, each a color-key region you set to keep, edit or embolden; merge parts by
    painting one part's color over another in the region map. Replaces the color-key regions there were"""

    bl_idname = "regia.segment_regions"
    bl_label = "Segment into Regions"
    bl_options = {"REGISTER", "UNDO"}

    method: EnumProperty(name="Method", items=METHODS, default="slic", description="How the image is split")
    parts: IntProperty(
        name="Parts", default=DEFAULT_PARTS, min=MIN_PARTS, max=MAX_PARTS,
        description="About how many parts to make: fewer gives larger parts",
    )  # fmt: skip

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        target = target_image(context)
        if target is None:
            return False
        if is_segmenting(target):
            cls.poll_message_set("This target is being segmented")
            return False
        return True

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context: bpy.types.Context) -> set[str]:
        target = pin_target(context)
        client = connection.client()
        if client is None:
            self.report({"ERROR"}, "Segment into Regions needs the engine: press Start Engine (Regia's preferences)")
            return {"CANCELLED"}
        messages.pop(target.name, None)
        _tasks[target.name] = SegmentTask(client, read_rgba(target), self.method, self.parts).start()
        if not bpy.app.timers.is_registered(poll_segments):
            bpy.app.timers.register(poll_segments, first_interval=POLL_SECONDS)
        self.report({"INFO"}, f"Regia: segmenting '{target.name}' into about {self.parts} parts")
        return {"FINISHED"}


def shutdown() -> None:
    """The add-on is going: forget running requests (their threads end on their own) and stop the timer."""
    _tasks.clear()
    if bpy.app.timers.is_registered(poll_segments):
        bpy.app.timers.unregister(poll_segments)


CLASSES = (REGIA_OT_segment_regions,)
