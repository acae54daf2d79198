"""The bpy side of the add-on: registration of properties, operators and panels, and clean shutdown.

Unregistering (the add-on disabled, or Blender quitting) cancels running jobs, stops the timers and stops the
managed engine process, so nothing outlives the add-on.
"""

from __future__ import annotations

import bpy

from . import (
    engine,
    operators,
    panels,
    preferences,
    props,
    runtime,
    storyboard_operators,
    storyboard_panels,
    storyboard_props,
    storyboard_runtime,
)

CLASSES: tuple[type, ...] = (
    *preferences.CLASSES,
    *operators.CLASSES,
    *panels.CLASSES,
    *storyboard_operators.CLASSES,
    *storyboard_panels.CLASSES,
)


def register() -> None:
    props.register()
    storyboard_props.register()  # after props: shots reuse its guides, regions and job status
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    storyboard_runtime.shutdown()
    runtime.shutdown()
    engine.shutdown()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    storyboard_props.unregister()
    props.unregister()
