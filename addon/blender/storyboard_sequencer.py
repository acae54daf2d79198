"""Shots as image strips in the Video Sequencer, on one channel named for the storyboard.

Blender 4.2 calls strips `sequences` (type ImageSequence); 5.0 only `strips` (type ImageStrip). The functions here
are the one place that knows. Each strip carries its shot's uid, so regenerating a shot replaces its strip only.
"""

from __future__ import annotations

import bpy

SHOT_KEY = "regia_shot"  # custom property on a strip: the uid of the shot it shows


def strips(editor: bpy.types.SequenceEditor) -> bpy.types.bpy_prop_collection:
    """The top-level strips (new and remove live here)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor: bpy.types.SequenceEditor) -> list[bpy.types.bpy_struct]:
    """Every strip, inside meta strips too."""
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def shot_strips(scene: bpy.types.Scene, uid: str) -> list[bpy.types.bpy_struct]:
    editor = scene.sequence_editor
    return [] if editor is None else [s for s in all_strips(editor) if s.get(SHOT_KEY) == uid]


def place_shot(
    scene: bpy.types.Scene, storyboard: bpy.types.PropertyGroup, shot: bpy.types.PropertyGroup, path: str
) -> bpy.types.bpy_struct:
    """Show `path` for the shot's frames on the storyboard's channel, instead of the shot's previous strip."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    editor.channels[storyboard.channel].name = storyboard.name
    remove_shot(scene, shot.uid)
    strip = strips(editor).new_image(
        name=shot.name, filepath=path, channel=storyboard.channel, frame_start=shot.frame_start, fit_method="FIT"
    )
    strip.frame_final_duration = max(1, shot.frame_end - shot.frame_start + 1)
    strip[SHOT_KEY] = shot.uid
    return strip


def remove_shot(scene: bpy.types.Scene, uid: str) -> int:
    """Remove the shot's strips (top-level ones: a strip the artist moved into a meta strip is theirs)."""
    editor = scene.sequence_editor
    if editor is None:
        return 0
    collection = strips(editor)
    found = [s for s in collection if s.get(SHOT_KEY) == uid]
    for strip in found:
        collection.remove(strip)
    return len(found)
