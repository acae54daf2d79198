"""Settings as plain data, and back: each result image carries the settings that made it, so that 'Re-run' and
'Load settings from result' restore them exactly. Generic over the PropertyGroup's RNA, so new properties travel
without code here."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import bpy

_SKIP = {"rna_type", "name"}
# The ID types Regia's properties point at, and where bpy.data keeps them.
_ID_COLLECTIONS = {"Image": "images", "Mask": "masks", "Object": "objects"}


def to_data(group: bpy.types.PropertyGroup) -> dict[str, Any]:
    data: dict[str, Any] = {"name": group.name} if "name" in group.bl_rna.properties else {}
    for prop in group.bl_rna.properties:
        key = prop.identifier
        if key in _SKIP or (prop.is_readonly and prop.type != "COLLECTION"):
            continue
        value = getattr(group, key)
        if prop.type == "COLLECTION":
            data[key] = [to_data(item) for item in value]
        elif prop.type == "POINTER":
            data[key] = value.name if isinstance(value, bpy.types.ID) else None
        elif getattr(prop, "is_array", False):
            data[key] = list(value)
        else:
            data[key] = value
    return data


def from_data(group: bpy.types.PropertyGroup, data: dict[str, Any]) -> None:
    props = group.bl_rna.properties
    for key, value in data.items():
        prop = props.get(key)
        if prop is None:
            continue  # a property this version no longer has
        if prop.type == "COLLECTION":
            collection = getattr(group, key)
            collection.clear()
            for item_data in value:
                from_data(collection.add(), item_data)
        elif prop.type == "POINTER":
            setattr(group, key, _find_id(prop.fixed_type, value))
        else:
            # e.g. an enum item that no longer exists: keep the current value
            with contextlib.suppress(TypeError, ValueError):
                setattr(group, key, value)


def _find_id(rna_type: bpy.types.Struct, name: str | None) -> bpy.types.ID | None:
    if name is None:
        return None
    collection = _ID_COLLECTIONS.get(rna_type.identifier)
    return getattr(bpy.data, collection).get(name) if collection else None


def dumps(group: bpy.types.PropertyGroup) -> str:
    return json.dumps(to_data(group), sort_keys=True)


def loads(group: bpy.types.PropertyGroup, text: str) -> None:
    from_data(group, json.loads(text))
