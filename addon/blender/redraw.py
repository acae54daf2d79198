"""Redraw the editors that show Regia's state (timers change it outside any operator, so Blender does not)."""

from __future__ import annotations

from collections.abc import Iterable

import bpy


def redraw(area_types: Iterable[str]) -> None:
    """Tag every open area of these types (IMAGE_EDITOR, VIEW_3D, ...) in every window for a redraw."""
    wanted = set(area_types)
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in wanted:
                area.tag_redraw()
