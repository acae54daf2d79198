"""Contact sheets: labelled image panels side by side, for demos and storyboards."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from regia_contract import label_font

REGION_COLOURS = [(230, 80, 60), (60, 160, 230), (90, 200, 90), (240, 200, 50), (190, 90, 220), (240, 140, 40)]
KEEP_COLOUR = (255, 255, 255)
BACKGROUND = (24 / 255, 24 / 255, 24 / 255)
LABEL_INK = (230 / 255, 230 / 255, 230 / 255)


def region_overview(
    init: np.ndarray | None, regions: list[tuple[str, str, np.ndarray]], size: tuple[int, int]
) -> np.ndarray:
    """Masks painted in colour over a dimmed init: (name, mode, HxW float mask) each."""
    width, height = size
    base = init.astype(np.float32) / 255.0 * 0.35 if init is not None else np.zeros((height, width, 3), np.float32)
    out = base.copy()
    # Keep regions last: they win over every other region in the engine too.
    order = sorted(range(len(regions)), key=lambda i: regions[i][1] == "keep")
    for index in order:
        _, mode, mask = regions[index]
        colour = np.array(KEEP_COLOUR if mode == "keep" else REGION_COLOURS[index % len(REGION_COLOURS)]) / 255.0
        alpha = (mask * 0.75)[..., None]
        out = out * (1.0 - alpha) + colour * alpha
    image = Image.fromarray(np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    y = 4
    for index, (name, mode, _) in enumerate(regions):
        colour = KEEP_COLOUR if mode == "keep" else REGION_COLOURS[index % len(REGION_COLOURS)]
        draw.rectangle([4, y + 2, 12, y + 10], fill=colour)
        draw.text((16, y), f"{name} ({mode})", fill=(255, 255, 255), font=font)
        y += 14
    return np.asarray(image)


def contact_sheet(panels: list[tuple[str, np.ndarray]], columns: int | None = None, pad: int = 8) -> np.ndarray:
    """Panels in a grid, each with its label underneath, written whole: wrapped to the panel's width (a line per
    label line, then as many as it takes), in Regia's label font, which has accented letters. All panels are
    scaled to one height."""
    if not panels:
        raise ValueError("a contact sheet needs at least one panel")
    columns = columns or len(panels)
    cell_h = max(p.shape[0] for _, p in panels)
    scaled = []
    for label, pixels in panels:
        image = Image.fromarray(pixels).convert("RGB")
        if image.height != cell_h:
            image = image.resize((round(image.width * cell_h / image.height), cell_h), Image.Resampling.LANCZOS)
        scaled.append((label, np.asarray(image, dtype=np.float32) / 255.0))
    cell_w = max(image.shape[1] for _, image in scaled)
    wrapped = [[piece for line in label.splitlines() for piece in label_font.wrap(line, cell_w)] for label, _ in scaled]
    line_h = label_font.HEIGHT + 2
    label_h = max(len(lines) for lines in wrapped) * line_h + 4
    rows = (len(scaled) + columns - 1) // columns
    sheet = np.empty((rows * (cell_h + label_h + pad) + pad, columns * (cell_w + pad) + pad, 3), np.float32)
    sheet[:] = BACKGROUND
    for index, ((_, image), lines) in enumerate(zip(scaled, wrapped, strict=True)):
        row, col = divmod(index, columns)
        x = pad + col * (cell_w + pad)
        y = pad + row * (cell_h + label_h + pad)
        sheet[y : y + cell_h, x : x + image.shape[1]] = image
        for number, line in enumerate(lines):
            label_font.draw_text(sheet, line, x, y + cell_h + 3 + number * line_h, LABEL_INK)
    return np.clip(sheet * 255 + 0.5, 0, 255).astype(np.uint8)
