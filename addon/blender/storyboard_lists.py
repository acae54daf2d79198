"""The storyboard's lists, for the generic list operators and drawing (lists.py): shots (a new one goes after the last;
a removed one's job stops and its strip goes), style images, and a shot's guides, regions and its regions' guides."""

from __future__ import annotations

import bpy

from . import shot_jobs
from .lists import Canvas, ListSpec, register_list
from .owners import active_shot, storyboard_of
from .storyboard_props import new_uid
from .storyboard_sequencer import remove_shot


def _new_shot(context: bpy.types.Context, storyboard: bpy.types.PropertyGroup, shot: bpy.types.PropertyGroup) -> None:
    """A new shot goes after the last one, with the scene's camera."""
    start = max((s.frame_end + 1 for s in storyboard.shots if s != shot), default=context.scene.frame_start)
    shot.name = f"Shot {len(storyboard.shots)}"
    shot.uid, shot.camera = new_uid(), context.scene.camera
    shot.frame_start, shot.frame_end = start, start + storyboard.default_length - 1


def _removing_shot(context: bpy.types.Context, shot: bpy.types.PropertyGroup) -> None:
    """Its job stops and its strip goes; its images stay in the file."""
    shot_jobs.cancel(context.scene, shot.uid)
    remove_shot(context.scene, shot.uid)


def _frame(context: bpy.types.Context) -> Canvas | None:
    """A shot's scribbles, outlines and paint layers are drawn over its frame: the storyboard's size."""
    storyboard, shot = storyboard_of(context), active_shot(storyboard_of(context))
    return None if shot is None else Canvas(shot.name, storyboard.width, storyboard.height)


def _active_shot_region(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    shot = active_shot(storyboard_of(context))
    if shot is None or not 0 <= shot.active_region < len(shot.regions):
        return None
    return shot.regions[shot.active_region]


def _shot_of(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    return active_shot(storyboard_of(context))


NO_SHOT = "Add or select a shot first"
register_list("SHOTS", ListSpec(
    "shot", storyboard_of, "shots", "active_shot", remove_note="its strip goes; its images stay in the file",
    on_add=_new_shot, on_remove=_removing_shot,
))  # fmt: skip
register_list("STYLE_IMAGES", ListSpec("style image", storyboard_of, "style_images", "active_style_image"))
register_list("SHOT_GUIDES", ListSpec("shot guide", _shot_of, "guides", "active_guide", NO_SHOT, canvas=_frame))
register_list("SHOT_REGIONS", ListSpec("shot region", _shot_of, "regions", "active_region", NO_SHOT, canvas=_frame))
register_list("SHOT_REGION_GUIDES", ListSpec(
    "guide", _active_shot_region, "guides", "active_guide", "Add or select a shot region first", canvas=_frame,
))  # fmt: skip
