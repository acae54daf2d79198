"""Guides, whatever list holds them (a region's, the guides for all regions, a storyboard shot's): Add (a menu of
every kind in guide_kinds.KINDS), New Canvas, and how a guide draws, its row and its settings. Every choice here
comes from the guide's kind's row in the table: nothing names a kind."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ...regia_contract.limits import MAX_WEIGHT
from ..guide_kinds import DEFAULT_KIND, KINDS, WEIGHT_TOOLTIP, axis_items, display_value, enum_items
from .images import mark_helper, new_image, open_for_painting
from .lists import LISTS, active_item, draw_list, list_row, resolve
from .owners import HELPER_KEY, TARGET_KEY

_image_choices: list[tuple[str, str, str]] = []  # Blender needs the items of a dynamic enum kept alive


def _reference_images(_self: object, _context: object) -> list[tuple[str, str, str]]:
    """Images an artist would pick as a reference: theirs, not the ones Regia made (results, layers, previews)."""
    names = sorted(image.name for image in bpy.data.images if HELPER_KEY not in image and TARGET_KEY not in image)
    _image_choices[:] = [(name, name, f"Use the image '{name}'") for name in names]
    return _image_choices


class REGIA_OT_guide_add(bpy.types.Operator):
    """Add a guide of this kind"""

    bl_idname = "regia.guide_add"
    bl_label = "Add Guide"
    bl_options = {"REGISTER", "UNDO"}
    bl_property = "image_choice"  # what the search popup of an image guide searches
    list_id: StringProperty(
        name="List", default="REGION_GUIDES", description="Which guides: a region's, all regions', a shot's, ...",
        options={"HIDDEN", "SKIP_SAVE"},
    )  # fmt: skip
    kind: EnumProperty(name="Kind", items=enum_items(), default=DEFAULT_KIND, description="What the guide asks for")
    text: StringProperty(name="Text", description="The prompt, for a text guide")
    image: StringProperty(name="Image", description="The name of the guide's image, for an image guide")
    colors: StringProperty(name="Colors", description="Hex colors for a palette guide (empty: the default ones)")
    axis: EnumProperty(name="Axis", items=axis_items(), description="The mirror's axis, for a symmetry guide")
    weight: FloatProperty(name="Weight", default=1.0, min=-MAX_WEIGHT, max=MAX_WEIGHT, description=WEIGHT_TOOLTIP)
    image_choice: EnumProperty(
        name="Image", items=_reference_images, description="The guide's image", options={"HIDDEN", "SKIP_SAVE"}
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """A guide that takes a reference image (style, content, inspiration) asks for it at once, in a search
        popup: one click fewer than adding it empty and then opening its image field."""
        if KINDS[self.kind].image == "reference" and not self.image and _reference_images(self, context):
            context.window_manager.invoke_search_popup(self)
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not self.image and KINDS[self.kind].image == "reference" and self.properties.is_property_set("image_choice"):
            self.image = self.image_choice
        found = resolve(context, self.list_id)
        if found is None:
            spec = LISTS.get(self.list_id)
            self.report({"ERROR"}, spec.missing if spec is not None else f"No guide list called {self.list_id!r}")
            return {"CANCELLED"}
        spec, owner = found
        image = bpy.data.images.get(self.image) if self.image else None
        if self.image and image is None:
            self.report({"ERROR"}, f"image: no image called {self.image!r}")
            return {"CANCELLED"}
        guides = getattr(owner, spec.collection)
        guide = guides.add()
        guide.kind, guide.weight, guide.axis = self.kind, self.weight, self.axis
        guide.text, guide.image = self.text, image
        if self.colors:
            guide.colors = self.colors
        setattr(owner, spec.index, len(guides) - 1)
        return {"FINISHED"}


class REGIA_OT_guide_new_canvas(bpy.types.Operator):
    """Make a new image to paint this guide on, the size of what it is drawn over, and open it for painting"""

    bl_idname = "regia.guide_new_canvas"
    bl_label = "New Canvas"
    bl_options = {"REGISTER", "UNDO"}
    list_id: StringProperty(name="List", default="REGION_GUIDES", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = resolve(context, self.list_id)
        guide = active_item(*found) if found is not None else None
        kind = KINDS.get(guide.kind) if guide is not None else None
        canvas = found[0].canvas(context) if found is not None and found[0].canvas is not None else None
        if kind is None or kind.image != "canvas" or canvas is None:
            return {"CANCELLED"}
        image = new_image(f"{canvas.name} {kind.label.lower()}", canvas.width, canvas.height, kind.paper,
                          alpha=kind.paper[3] < 1)  # fmt: skip
        guide.image = mark_helper(image, "canvas", canvas.target)
        open_for_painting(context, guide.image)
        return {"FINISHED"}


@list_row("RegiaGuide")
def _guide_row(layout: bpy.types.UILayout, data: Any, guide: Any) -> None:
    kind = KINDS.get(guide.kind)
    row = layout.row(align=True)
    if kind is None:  # a kind this version no longer has
        row.label(text=str(guide.kind), icon="QUESTION")
        return
    values = {"text": guide.text, "image": guide.image.name if guide.image else "", "colors": guide.colors,
              "axis": guide.axis.title()}  # fmt: skip
    shown = display_value(kind, values)
    row.label(text=f"{kind.label}: {shown}" if shown else kind.label, icon=kind.icon)
    row.prop(guide, "weight", text="", emboss=False)


def _draw_image(layout: bpy.types.UILayout, guide: Any) -> None:
    layout.template_ID(guide, "image", open="image.open")


def _draw_axis(layout: bpy.types.UILayout, guide: Any) -> None:
    layout.row().prop(guide, "axis", expand=True)


# How each of a guide's fields (guide_kinds.AddonGuideKind.fields) draws.
_FIELD_DRAWERS = {
    "text": lambda layout, guide: layout.prop(guide, "text"),
    "image": _draw_image,
    "colors": lambda layout, guide: layout.prop(guide, "colors"),
    "axis": _draw_axis,
}


def draw_guides(layout: bpy.types.UILayout, list_id: str, owner: Any, rows: int = 3) -> None:
    """A guide list, its Add menu (every kind), and the active guide's settings: its kind's fields."""

    def add_menu(col: bpy.types.UILayout) -> None:
        col.operator_menu_enum("regia.guide_add", "kind", text="", icon="ADD").list_id = list_id

    draw_list(layout, list_id, owner, rows, add=add_menu)
    guide = active_item(LISTS[list_id], owner)
    if guide is None:
        return
    col = layout.column()
    col.prop(guide, "kind")
    col.prop(guide, "weight")
    kind = KINDS.get(guide.kind)
    for name in kind.fields if kind is not None else ():
        _FIELD_DRAWERS[name](col, guide)
    if kind is not None and kind.image == "canvas":
        col.operator("regia.guide_new_canvas", icon="BRUSH_DATA").list_id = list_id


CLASSES: tuple[type, ...] = (REGIA_OT_guide_add, REGIA_OT_guide_new_canvas)
