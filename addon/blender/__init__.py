"""The bpy side of the add-on: registration of properties, operators, lists and panels, and clean shutdown.

Unregistering (the add-on disabled, or Blender quitting) cancels running jobs, stops the one timer and stops the
managed engine process, so nothing outlives the add-on.
"""

from __future__ import annotations

import bpy

from . import (
    clip_models,
    connection,
    connection_operators,
    engine_autostart,
    guides,
    jobs,
    lists,
    operators,
    panels,
    preferences,
    props,
    segment_operators,
    storyboard_lists,  # noqa: F401 - its lists register on import, for the generic list operators
    storyboard_operators,
    storyboard_panels,
    storyboard_props,
    storyboard_shots,
    texture_operators,
    texture_panels,
    texture_view_operators,
    variation_operators,
)

CLASSES: tuple[type, ...] = (
    *preferences.CLASSES,
    *lists.CLASSES,
    *guides.CLASSES,
    *operators.CLASSES,
    *connection_operators.CLASSES,
    *clip_models.CLASSES,
    *segment_operators.CLASSES,
    *variation_operators.CLASSES,
    *panels.CLASSES,
    *storyboard_shots.CLASSES,
    *storyboard_operators.CLASSES,
    *storyboard_panels.CLASSES,
    *texture_operators.CLASSES,
    *texture_view_operators.CLASSES,
    *texture_panels.CLASSES,
)


def register() -> None:
    props.register()
    storyboard_props.register()  # after props: shots reuse its guides, regions and job status
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    engine_autostart.register()


def unregister() -> None:
    engine_autostart.unregister()
    jobs.shutdown()
    segment_operators.shutdown()
    connection.shutdown()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    storyboard_props.unregister()
    props.unregister()
