"""The bpy side of the add-on: registration of properties, operators and panels, and clean shutdown.

Unregistering (the add-on disabled, or Blender quitting) cancels running jobs, stops the timer and stops the
managed engine process, so nothing outlives the add-on.
"""

from __future__ import annotations

import bpy

from . import engine, operators, panels, preferences, props, runtime

CLASSES: tuple[type, ...] = (*preferences.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    props.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    runtime.shutdown()
    engine.shutdown()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    props.unregister()
