"""Text in Regia's panels, as Blender's own UI writes it: messages wrapped to the sidebar's width, names in Title
Case, American spelling. Pure logic (no bpy): the panels and the UI test both use it."""

from __future__ import annotations

import re

# What one character of Blender's UI font takes at UI scale 1, on average, with room to spare (the font is
# proportional: a line of "m"s is wider than a line of "i"s, and a clipped line loses words).
CHAR_PX = 6.5
# A box in a sidebar panel: the panel's and the box's margins and a line's icon, at UI scale 1.
MESSAGE_MARGIN_PX = 56
MIN_CHARS = 16
FALLBACK_CHARS = 40  # when the region's width is unknown (drawing with no region)

# Words Title Case leaves in lower case, unless they come first (Blender: "Add Region from Mask Layer").
MINOR_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "nor",
        "of",
        "on",
        "or",
        "over",
        "per",
        "the",
        "to",
        "via",
        "vs",
        "with",
    ]
)
# British spellings and Blender's (American) ones: UI text says "Color", as Blender does.
SPELLINGS = {
    "colour": "color",
    "grey": "gray",
    "optimis": "optimiz",
    "normalis": "normaliz",
    "centre": "center",
    "behaviour": "behavior",
}
_BRITISH = re.compile("|".join(SPELLINGS), re.IGNORECASE)
_WORD = re.compile(r"[^\s/]+")


def chars_that_fit(region_width: float | None, ui_scale: float | None, margin_px: float = MESSAGE_MARGIN_PX) -> int:
    """How many characters of a message fit on one line of a panel in a region `region_width` pixels wide.

    Blender's region width is in pixels already scaled by the UI scale (Preferences > Interface > Resolution Scale,
    and the display's DPI): the font and the margins grow with it, so both are scaled here too."""
    if not region_width or region_width <= 0:
        return FALLBACK_CHARS
    scale = ui_scale if ui_scale and ui_scale > 0 else 1.0
    return max(MIN_CHARS, int((region_width - margin_px * scale) / (CHAR_PX * scale)))


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters, broken between words (a longer word gets a line of its own,
    broken at `width`, so that a path or a hash is never lost past the panel's edge). Never an empty list."""
    width = max(1, width)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            while len(word) > width:
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:width])
                word = word[width:]
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            lines.append(line)
    return lines or [""]


def title_case_problems(text: str) -> list[str]:
    """The words of a name or label that Title Case would capitalise but `text` does not ("Shot length" ->
    ["length"]). Words that do not start with a letter (numbers, "(", "#", "{prompt}") are left alone, and so is a
    word with a capital already inside it ("iOS", "x2")."""
    words = _WORD.findall(text)
    problems = []
    for index, word in enumerate(words):
        bare = word.strip("\"'()[],:;.!?")
        if not bare or not bare[0].isalpha() or not bare[0].islower():
            continue
        if index > 0 and bare in MINOR_WORDS:
            continue
        if any(c.isupper() for c in bare[1:]):  # "iOS", "x2"-like identifiers
            continue
        problems.append(bare)
    return problems


def is_title_case(text: str) -> bool:
    return not title_case_problems(text)


def british_spellings(text: str) -> list[str]:
    """British spellings in `text` where Blender's UI spells it the American way ("Colour" -> ["Colour"])."""
    return [match.group(0) for match in _BRITISH.finditer(text)]
