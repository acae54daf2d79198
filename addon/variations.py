"""Variations and seeds, the add-on's pure side: a new seed per Generate unless the seed is locked, the seeds of a
set of variations, and the grid that shows them side by side (a contact sheet, one numbered cell each). No bpy."""

from __future__ import annotations

import secrets

import numpy as np

from .contact_sheet import Panel, cell_size, contact_sheet

MAX_SEED = 2**31 - 1  # Blender's IntProperty holds a 32-bit int; the engine takes any seed up to 2**32 - 1
MIN_VARIATIONS, MAX_VARIATIONS = 2, 9


def new_seed() -> int:
    """A fresh seed for an unlocked Generate (never 0, so a changed seed is visible in the panel)."""
    return 1 + secrets.randbelow(MAX_SEED)


def variation_seeds(base: int, count: int) -> list[int]:
    """`count` seeds from `base`: base, base + 1, ... (so variation 1 is what Generate gives with the same seed),
    wrapping within Blender's range."""
    if not MIN_VARIATIONS <= count <= MAX_VARIATIONS:
        raise ValueError(f"variations: {count}; allowed: {MIN_VARIATIONS} to {MAX_VARIATIONS}")
    return [(base + i) % (MAX_SEED + 1) for i in range(count)]


def preset_variations(presets: list[str], count: int) -> list[str]:
    """The presets a Vary: Presets set uses: the first `count` of those there are (every one when fewer)."""
    if not presets:
        raise ValueError("Vary Presets: no presets found; allowed: a presets folder with .toml presets")
    return presets[: max(MIN_VARIATIONS, min(count, MAX_VARIATIONS))]


def columns_for(count: int) -> int:
    """As square a grid as the count allows: 2 -> 2, 4 -> 2, 6 -> 3, 9 -> 3."""
    return max(1, int(np.ceil(np.sqrt(count))))


def variations_grid(images: list[np.ndarray | None], labels: list[str], size: tuple[int, int]) -> np.ndarray:
    """A top-down (h, w, 3) grid of the variations, each labelled with its number and what varies ("seed 5",
    "Ink"); a gray cell for one not made yet."""
    pairs = enumerate(zip(images, labels, strict=True))
    panels = [Panel(image, [f"{i + 1}  {label}"]) for i, (image, label) in pairs]
    sheet, _boxes = contact_sheet(panels, cell_size(*size), columns=columns_for(len(panels)))
    return sheet
