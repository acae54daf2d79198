"""Every list in Regia's panels, one way: a registry of the add-on's collections (register_list), generic Add,
Remove and Move operators over any of them, one UIList whose rows each item type draws for itself (list_row), and
draw_list, which draws a list with its buttons.

A list is named by an id ("REGIONS", "SHOT_GUIDES", ...); the operators take it as `list_id` and find the list's
owner (the target's settings, the active region, the storyboard, the active shot) in the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import bpy
from bpy.props import EnumProperty, StringProperty

Owner = Any  # a PropertyGroup (or ID) holding the collection


class Canvas(NamedTuple):
    """What a list's images are drawn over: paint layers and canvases are made this size and named after it."""

    name: str
    width: int
    height: int
    target: str | None = None  # the target image they belong to (none for a storyboard shot's)


@dataclass(frozen=True)
class ListSpec:
    noun: str  # what an item is ("region", "shot"): tooltips and messages name it
    owner: Callable[[bpy.types.Context], Owner | None]  # resolved by operators only, never while drawing
    collection: str
    index: str  # the owner's active-item property
    missing: str = "Nothing to add to here"  # the message when there is no owner
    remove_note: str = ""  # said after "Remove the active <noun>", e.g. what stays in the file
    on_add: Callable[[bpy.types.Context, Owner, Any], None] | None = None  # fill in a new item
    on_remove: Callable[[bpy.types.Context, Any], None] | None = None  # before an item goes (its job, its strip)
    canvas: Callable[[bpy.types.Context], Canvas | None] | None = None  # guides, regions: what they draw over


LISTS: dict[str, ListSpec] = {}
ROWS: dict[str, Callable[[bpy.types.UILayout, Owner, Any], None]] = {}  # an item's RNA type -> its row


def register_list(list_id: str, spec: ListSpec) -> None:
    LISTS[list_id] = spec


def list_row(type_name: str) -> Callable:
    """Decorator: `fn(layout, data, item)` draws one row of items of this PropertyGroup type, in any list."""

    def register(draw: Callable[[bpy.types.UILayout, Owner, Any], None]) -> Callable:
        ROWS[type_name] = draw
        return draw

    return register


def resolve(context: bpy.types.Context, list_id: str) -> tuple[ListSpec, Owner] | None:
    spec = LISTS.get(list_id)
    owner = spec.owner(context) if spec is not None else None
    return None if owner is None else (spec, owner)


def active_item(spec: ListSpec, owner: Owner) -> Any | None:
    items, index = getattr(owner, spec.collection), getattr(owner, spec.index)
    return items[index] if 0 <= index < len(items) else None


def remove_active(owner: Owner, collection: str, index: str) -> bool:
    """Remove `owner.<collection>[owner.<index>]` and keep the index on a neighbour; False if there was none."""
    items = getattr(owner, collection)
    active = getattr(owner, index)
    if not 0 <= active < len(items):
        return False
    items.remove(active)
    setattr(owner, index, max(0, min(active, len(items) - 1)))
    return True


def move_active(owner: Owner, collection: str, index: str, step: int) -> bool:
    """Move the active item `step` places (-1 up, 1 down), the index with it; False at either end."""
    items, i = getattr(owner, collection), getattr(owner, index)
    j = i + step
    if not (0 <= i < len(items) and 0 <= j < len(items)):
        return False
    items.move(i, j)
    setattr(owner, index, j)
    return True


class _ListOperator(bpy.types.Operator):
    list_id: StringProperty(name="List", description="Which of Regia's lists", options={"HIDDEN", "SKIP_SAVE"})

    def found(self, context: bpy.types.Context) -> tuple[ListSpec, Owner] | None:
        found = resolve(context, self.list_id)
        if found is None:
            spec = LISTS.get(self.list_id)
            self.report({"ERROR"}, spec.missing if spec is not None else f"No list called {self.list_id!r}")
        return found


def _noun(properties: Any) -> str:
    spec = LISTS.get(properties.list_id)
    return spec.noun if spec is not None else "item"


class REGIA_OT_list_add(_ListOperator):
    """Add an item to the list"""

    bl_idname = "regia.list_add"
    bl_label = "Add"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def description(cls, context: bpy.types.Context, properties: Any) -> str:
        return f"Add a {_noun(properties)}"

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = self.found(context)
        if found is None:
            return {"CANCELLED"}
        spec, owner = found
        items = getattr(owner, spec.collection)
        item = items.add()
        if spec.on_add is not None:
            spec.on_add(context, owner, item)
        setattr(owner, spec.index, len(items) - 1)
        return {"FINISHED"}


class REGIA_OT_list_remove(_ListOperator):
    """Remove the active item of the list"""

    bl_idname = "regia.list_remove"
    bl_label = "Remove"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def description(cls, context: bpy.types.Context, properties: Any) -> str:
        spec = LISTS.get(properties.list_id)
        note = f" ({spec.remove_note})" if spec is not None and spec.remove_note else ""
        return f"Remove the active {_noun(properties)}{note}"

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = self.found(context)
        if found is None:
            return {"CANCELLED"}
        spec, owner = found
        item = active_item(spec, owner)
        if item is None:
            return {"CANCELLED"}
        if spec.on_remove is not None:
            spec.on_remove(context, item)
        return {"FINISHED"} if remove_active(owner, spec.collection, spec.index) else {"CANCELLED"}


class REGIA_OT_list_move(_ListOperator):
    """Move the active item up or down the list"""

    bl_idname = "regia.list_move"
    bl_label = "Move"
    bl_options = {"REGISTER", "UNDO"}
    direction: EnumProperty(
        name="Direction",
        items=[("UP", "Up", "Towards the top of the list"), ("DOWN", "Down", "Towards the bottom of the list")],
        description="Which way the active item moves",
    )

    @classmethod
    def description(cls, context: bpy.types.Context, properties: Any) -> str:
        return f"Move the active {_noun(properties)} {properties.direction.lower()} the list"

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = self.found(context)
        if found is None:
            return {"CANCELLED"}
        spec, owner = found
        moved = move_active(owner, spec.collection, spec.index, -1 if self.direction == "UP" else 1)
        return {"FINISHED"} if moved else {"CANCELLED"}


class REGIA_UL_items(bpy.types.UIList):
    """Every Regia list: each item type draws its own row (list_row)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0, flt_flag=0) -> None:
        draw = ROWS.get(item.bl_rna.identifier)
        if draw is not None:
            draw(layout, data, item)
        else:
            layout.prop(item, "name", text="", emboss=False)


def draw_list(
    layout: bpy.types.UILayout,
    list_id: str,
    owner: Owner,
    rows: int = 3,
    add: Callable[[bpy.types.UILayout], None] | None = None,
) -> bpy.types.UILayout:
    """The list and its buttons: Add (the generic one, or `add`'s own), Remove, Move Up and Down. Returns the
    buttons' column, for a list's extra buttons."""
    spec = LISTS[list_id]
    row = layout.row()
    row.template_list("REGIA_UL_items", list_id, owner, spec.collection, owner, spec.index, rows=rows)
    col = row.column(align=True)
    if add is None:
        col.operator("regia.list_add", text="", icon="ADD").list_id = list_id
    else:
        add(col)
    col.operator("regia.list_remove", text="", icon="REMOVE").list_id = list_id
    col.separator()
    for direction, icon in (("UP", "TRIA_UP"), ("DOWN", "TRIA_DOWN")):
        op = col.operator("regia.list_move", text="", icon=icon)
        op.list_id, op.direction = list_id, direction
    return col


CLASSES: tuple[type, ...] = (REGIA_OT_list_add, REGIA_OT_list_remove, REGIA_OT_list_move, REGIA_UL_items)
