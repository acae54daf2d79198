"""UIList-backed collections: removing the active item the way every list in Regia does it."""

from __future__ import annotations

import bpy


def remove_active(owner: bpy.types.bpy_struct, collection: str, index: str) -> bool:
    """Remove `owner.<collection>[owner.<index>]` and keep the index on a neighbour; False if there was none."""
    items = getattr(owner, collection)
    active = getattr(owner, index)
    if not 0 <= active < len(items):
        return False
    items.remove(active)
    setattr(owner, index, min(active, len(items) - 1))
    return True
