"""A storyboard's contact sheet: every shot in order, in rows, with its label lines under it, each wrapped to the
shot's width and written whole. Pure numpy (and Regia's pre-rendered label font, which has accented letters), so
Blender writes it without Pillow."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..regia_contract.label_font import HEIGHT, draw_text, wrap
from .pixels import resize, rgba

BACKGROUND = (0.09, 0.09, 0.09)
MISSING = (0.3, 0.3, 0.3)  # a shot with no image yet: a grey card, so the sheet still shows every shot
INK = (0.92, 0.92, 0.92)
PAD = 8
LINE_GAP = 3
MAX_CELL_SIDE = 480  # larger storyboards are shown smaller: a sheet is for reading the sequence


@dataclass
class Panel:
    image: np.ndarray | None  # top-down (h, w, 3|4) float display values, or None when there is none yet
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int


def cell_size(width: int, height: int) -> tuple[int, int]:
    """The size each shot is drawn at: the storyboard's, scaled down to MAX_CELL_SIDE at most."""
    f = min(1.0, MAX_CELL_SIDE / max(width, height))
    return max(1, round(width * f)), max(1, round(height * f))


def layout(count: int, cell: tuple[int, int], columns: int, lines: int) -> tuple[tuple[int, int], list[Box]]:
    """The sheet's (width, height) and each shot's image box, row by row."""
    cell_w, cell_h = cell
    label_h = lines * (HEIGHT + LINE_GAP) + LINE_GAP
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    size = (PAD + columns * (cell_w + PAD), PAD + rows * (cell_h + label_h + PAD))
    boxes = [
        Box(PAD + (i % columns) * (cell_w + PAD), PAD + (i // columns) * (cell_h + label_h + PAD), cell_w, cell_h)
        for i in range(count)
    ]
    return size, boxes


def contact_sheet(panels: list[Panel], cell: tuple[int, int], columns: int = 4) -> tuple[np.ndarray, list[Box]]:
    """The sheet as a top-down (h, w, 3) float image, and where each panel's image is on it."""
    if not panels:
        raise ValueError("a contact sheet needs at least one shot")
    wrapped = [[piece for line in panel.lines for piece in wrap(line, cell[0])] for panel in panels]
    lines = max(len(panel_lines) for panel_lines in wrapped)
    (width, height), boxes = layout(len(panels), cell, columns, lines)
    sheet = np.empty((height, width, 3), dtype=np.float32)
    sheet[:] = BACKGROUND
    for panel, panel_lines, box in zip(panels, wrapped, boxes, strict=True):
        target = sheet[box.y : box.y + box.height, box.x : box.x + box.width]
        if panel.image is None:
            target[:] = MISSING
        else:
            shot = rgba(panel.image)
            # Transparent pixels show the card behind them, as an image editor shows them on a checkerboard.
            shot = shot[..., :3] * shot[..., 3:] + np.asarray(MISSING, np.float32) * (1 - shot[..., 3:])
            target[:] = resize(shot, box.width, box.height)
        y = box.y + box.height + LINE_GAP
        for line in panel_lines:
            draw_text(sheet, line, box.x, y, INK)
            y += HEIGHT + LINE_GAP
    return sheet, boxes
