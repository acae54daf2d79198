"""The add-on's guide kinds: one row per kind of the contract (regia_contract/kinds.py), plus Negative Text.

Everything the add-on does with a guide's kind comes from this table: the enum items that .blend files store, the
label, icon and tooltip, which properties a guide shows and copies (text, image, colours, axis), whether its image
is drawn over the target (a canvas), and how its weight is signed. spec_builder.guide_spec turns a guide into spec
JSON from the same row. A kind added to the contract (and the engine) appears here as it is; at most its icon goes
into ICONS.

Pure: no bpy. The bpy side (addon/blender/) builds its enum items, panels and operators from KINDS.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..regia_contract.kinds import AXIS, CANVAS_IMAGE, COLORS, GUIDE_KINDS, IMAGE, PROMPT, SYMMETRY_AXES, GuideKind

# Blender icons by the contract's kind (names that exist in Blender 4.2 and 5.0). A kind not here gets DEFAULT_ICON.
ICONS = {
    "text": "FONT_DATA",
    "image": "LIGHT",
    "style": "BRUSH_DATA",
    "content": "IMAGE_DATA",
    "scribble": "GREASEPENCIL",
    "outline": "MOD_OUTLINE",
    "palette": "COLOR",
    "tv": "MOD_SMOOTH",
    "saturation": "RESTRICT_COLOR_ON",
    "symmetry": "MOD_MIRROR",
}
DEFAULT_ICON = "DOT"
NEGATIVE_TEXT_ICON = "CANCEL"

# Enum identifiers and numbers that .blend files already store (Blender saves an enum as its number): never change
# these. Any other kind's number is derived from its identifier, so it is the same in every session too.
STORED_NUMBERS = {
    "TEXT": 0, "NEGATIVE_TEXT": 1, "INSPIRATION": 2, "STYLE": 3, "CONTENT": 4, "SCRIBBLE": 5, "OUTLINE": 6,
    "PALETTE": 7,
}  # fmt: skip
# The contract's "image" kind was the add-on's INSPIRATION before there was a contract; other identifiers are the
# kind in capitals.
_IDENTIFIERS = {"image": "INSPIRATION"}

# Content's layout is read at the canvas's size, so the add-on sends it at that size (as it always has); other
# reference images are only summarised (style statistics, a CLIP embedding), so they are sent at most this big.
REFERENCE_AT_CANVAS = frozenset({"content"})
MAX_REFERENCE_SIDE = 1024
# What a New Canvas starts as: scribbles are colour strokes on transparency; other canvases dark lines on white.
TRANSPARENT, WHITE = (0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)
PAPER = {"scribble": TRANSPARENT}

# The guide properties each need brings, in the order a panel shows them (RegiaGuide's property names).
_FIELDS = ((PROMPT, "text"), (IMAGE, "image"), (CANVAS_IMAGE, "image"), (COLORS, "colors"), (AXIS, "axis"))

AXIS_TOOLTIPS = {
    "vertical": "Left and right mirror each other, about a vertical line through the middle of the region",
    "horizontal": "Top and bottom mirror each other, about a horizontal line through the middle of the region",
}
WEIGHT_TOOLTIP = "How strongly the guide pulls; a negative weight repels (does the opposite)"


@dataclass(frozen=True)
class AddonGuideKind:
    identifier: str  # the enum item .blend files store
    number: int  # the enum item's number, which is what Blender saves
    label: str  # Title Case
    icon: str
    tooltip: str
    contract: GuideKind  # the spec's kind, and what it needs
    repels: bool = False  # the weight is always negative (Negative Text)

    @property
    def spec_kind(self) -> str:
        return self.contract.kind

    @property
    def fields(self) -> tuple[str, ...]:
        """The guide's properties besides its weight, as a panel shows them and the add-on copies them."""
        return tuple(dict.fromkeys(name for need, name in _FIELDS if need in self.contract.needs))

    @property
    def needs_clip(self) -> bool:
        return self.contract.needs_clip

    @property
    def image(self) -> str | None:
        """ "canvas" (drawn over the target, the target's size), "reference" (any size) or None."""
        return self.contract.image

    @property
    def reference_at_canvas(self) -> bool:
        return self.spec_kind in REFERENCE_AT_CANVAS

    @property
    def paper(self) -> tuple[float, float, float, float]:
        return PAPER.get(self.spec_kind, WHITE)

    def weight(self, value: float) -> float:
        """The spec's signed weight: negative repels."""
        return -abs(value) if self.repels else value


def _number(identifier: str) -> int:
    if identifier in STORED_NUMBERS:
        return STORED_NUMBERS[identifier]
    return 100 + zlib.crc32(identifier.encode()) % 1_000_000  # stable across sessions, unlike hash()


def _tooltip(info: GuideKind) -> str:
    if info.kind == "text":  # the diffusion generator takes text as its prompts
        return f"{info.summary} (needs a CLIP model; with the Diffusion generator it is the region's prompt)"
    return f"{info.summary} (needs a CLIP model)" if info.needs_clip else info.summary


def _row(info: GuideKind) -> AddonGuideKind:
    identifier = _IDENTIFIERS.get(info.kind, info.kind.upper())
    icon = ICONS.get(info.kind, DEFAULT_ICON)
    return AddonGuideKind(identifier, _number(identifier), info.label, icon, _tooltip(info), info)


def _negative_text() -> AddonGuideKind:
    """A text guide whose weight is always negative: what the region should not show."""
    text = GUIDE_KINDS["text"]
    tooltip = (
        "What the region should not show: a text prompt that repels (needs a CLIP model; with the Diffusion "
        "generator it is the region's negative prompt)"
    )
    return AddonGuideKind("NEGATIVE_TEXT", STORED_NUMBERS["NEGATIVE_TEXT"], "Negative Text", NEGATIVE_TEXT_ICON,
                          tooltip, text, repels=True)  # fmt: skip


def _table() -> dict[str, AddonGuideKind]:
    rows: list[AddonGuideKind] = []
    for info in GUIDE_KINDS.values():
        rows.append(_row(info))
        if info.kind == "text":
            rows.append(_negative_text())
    table = {row.identifier: row for row in rows}
    numbers = [row.number for row in rows]
    if len(set(numbers)) != len(numbers) or len(table) != len(rows):  # pragma: no cover - a clash in a new row
        raise RuntimeError(f"guide kinds clash: {[(r.identifier, r.number) for r in rows]}")
    return table


KINDS: dict[str, AddonGuideKind] = _table()
DEFAULT_KIND = "STYLE"


def kind_of(identifier: str) -> AddonGuideKind | None:
    return KINDS.get(identifier)


def enum_items() -> list[tuple[str, str, str, str, int]]:
    """Blender EnumProperty items: (identifier, label, tooltip, icon, number)."""
    return [(k.identifier, k.label, k.tooltip, k.icon, k.number) for k in KINDS.values()]


def axis_items() -> list[tuple[str, str, str]]:
    return [(axis, axis.title(), AXIS_TOOLTIPS.get(axis, f"Mirror about the {axis} axis")) for axis in SYMMETRY_AXES]


def display_value(kind: AddonGuideKind, values: dict[str, str]) -> str:
    """What a list row shows after the kind's label: its first field's value (the prompt, the image's name, the
    colours, the axis), or nothing for a kind with no field (Smoothness, Saturation)."""
    if not kind.fields:
        return ""
    name = kind.fields[0]
    return values.get(name) or ("(no image)" if name == "image" else "")
