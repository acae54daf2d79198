"""Storyboard operators that make shots: from timeline markers bound to cameras, and from a text block. Both replace
the shots they would make again and keep the rest (or, with Replace, remove the rest, after asking)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..spec_builder import InputError
from ..storyboard import Marker, ShotRange, parse_shot_text, shots_from_markers, shots_from_text
from .owners import storyboard_of
from .storyboard_inputs import ensure_uids
from .storyboard_props import new_uid


def apply_ranges(storyboard: bpy.types.PropertyGroup, ranges: list[ShotRange], replace: bool) -> None:
    """Shots named as in `ranges` get its frames (and camera, description when given), new ones are added, in that
    order; with `replace`, shots not in `ranges` go. A shot kept keeps its history, guides and settings."""
    ensure_uids(storyboard)
    for order, shot_range in enumerate(ranges):
        index = storyboard.shots.find(shot_range.name)
        if index < 0:
            shot = storyboard.shots.add()
            shot.name, shot.uid = shot_range.name, new_uid()
            index = len(storyboard.shots) - 1
        shot = storyboard.shots[index]
        shot.frame_start, shot.frame_end = shot_range.frame_start, shot_range.frame_end
        if shot_range.camera is not None:
            shot.camera = bpy.data.objects.get(shot_range.camera)
        if shot_range.description is not None:
            shot.description = shot_range.description
        storyboard.shots.move(index, order)
    if replace:
        names = {r.name for r in ranges}
        for index in reversed(range(len(storyboard.shots))):
            if storyboard.shots[index].name not in names:
                storyboard.shots.remove(index)
    storyboard.active_shot = min(max(storyboard.active_shot, 0), len(storyboard.shots) - 1)


def marker_ranges(scene: bpy.types.Scene) -> tuple[list[ShotRange], list[str]]:
    markers = [Marker(m.name, m.frame, m.camera.name if m.camera else None) for m in scene.timeline_markers]
    return shots_from_markers(markers, scene.frame_end)


def shots_replaced(storyboard: bpy.types.PropertyGroup, ranges: list[ShotRange]) -> list[str]:
    """The shots `apply_ranges(..., replace=True)` would remove: those no range names (made by hand, or by text)."""
    names = {r.name for r in ranges}
    return [shot.name for shot in storyboard.shots if shot.name not in names]


def confirm(context: bpy.types.Context, operator: bpy.types.Operator, event: bpy.types.Event, message: str) -> set:
    """Ask before going on; Blender 4.1+ shows `message` in the popup, older ones their own question."""
    try:
        return context.window_manager.invoke_confirm(
            operator, event, title=operator.bl_label, message=message, confirm_text="Replace", icon="WARNING"
        )
    except TypeError:
        return context.window_manager.invoke_confirm(operator, event)


class REGIA_OT_storyboard_from_markers(bpy.types.Operator):
    """Make a shot for each timeline marker bound to a camera: from the marker to the frame before the next one,
    the last to the scene's end"""

    bl_idname = "regia.storyboard_from_markers"
    bl_label = "Shots from Markers"
    bl_options = {"REGISTER", "UNDO"}
    replace: BoolProperty(name="Replace", default=True, description="Remove shots that no marker makes")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Shots no marker makes (made by hand, or from text) go only when the artist says so."""
        ranges, _notes = marker_ranges(context.scene)
        gone = shots_replaced(storyboard_of(context), ranges) if self.replace and ranges else []
        if not gone:
            return self.execute(context)
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        return confirm(context, self, event, f"No marker makes {shown}: remove {'it' if len(gone) == 1 else 'them'}?")

    def execute(self, context: bpy.types.Context) -> set[str]:
        ranges, notes = marker_ranges(context.scene)
        storyboard = storyboard_of(context)
        if not ranges:
            storyboard.message = "No marker is bound to a camera: bind one in the timeline (Marker > Bind Camera)"
            self.report({"ERROR"}, storyboard.message)
            return {"CANCELLED"}
        apply_ranges(storyboard, ranges, self.replace)
        storyboard.message = "; ".join([f"{len(ranges)} shots from markers", *notes])
        self.report({"WARNING"} if notes else {"INFO"}, storyboard.message)
        return {"FINISHED"}


class REGIA_OT_storyboard_from_text(bpy.types.Operator):
    """Make shots from a text block of lines 'Shot name: description' ('Shot name [1-24]: ...' sets the frames);
    blank lines and lines starting with # are skipped"""

    bl_idname = "regia.storyboard_from_text"
    bl_label = "Shots from Text"
    bl_options = {"REGISTER", "UNDO"}
    text: StringProperty(name="Text", description="Text block name (default: the storyboard's)")
    replace: BoolProperty(name="Replace", default=True, description="Remove shots the text does not name")

    def execute(self, context: bpy.types.Context) -> set[str]:
        storyboard = storyboard_of(context)
        block = bpy.data.texts.get(self.text) if self.text else storyboard.text
        if block is None:
            storyboard.message = f"No text block {self.text!r}" if self.text else "Pick a text block of shots first"
            self.report({"ERROR"}, storyboard.message)
            return {"CANCELLED"}
        try:
            lines = parse_shot_text(block.as_string())
        except InputError as error:
            storyboard.message = f"Text '{block.name}' {error}"
            self.report({"ERROR"}, storyboard.message)
            return {"CANCELLED"}
        if not lines:
            storyboard.message = f"Text '{block.name}' has no shot lines ('Shot name: description')"
            self.report({"ERROR"}, storyboard.message)
            return {"CANCELLED"}
        existing = {s.name: (s.frame_start, s.frame_end) for s in storyboard.shots}
        ranges = shots_from_text(lines, existing, context.scene.frame_start, storyboard.default_length)
        apply_ranges(storyboard, ranges, self.replace)
        storyboard.message = f"{len(ranges)} shots from text '{block.name}'"
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (REGIA_OT_storyboard_from_markers, REGIA_OT_storyboard_from_text)
