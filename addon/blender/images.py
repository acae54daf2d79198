"""Blender images in and out: pixels to numpy (fast, through foreach_get/foreach_set), PNG files to datablocks."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..pixels import from_blender, linear_to_srgb, to_blender
from .owners import HELPER_KEY, TARGET_KEY
from .redraw import redraw

# Colour spaces whose pixels Blender stores as display values already; anything else is linear.
_DISPLAY_SPACES = {"sRGB", "Non-Color", "Filmic sRGB", "AgX Base sRGB"}


def size_of(image: bpy.types.Image) -> tuple[int, int]:
    width, height = image.size
    return int(width), int(height)


def read_rgba(image: bpy.types.Image) -> np.ndarray:
    """The image as a top-down (h, w, 4) float32 array of display (sRGB) values, as a PNG would hold them."""
    width, height = size_of(image)
    if width == 0 or height == 0:
        raise ValueError(f"image '{image.name}' has no pixels (is its file missing?)")
    flat = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    pixels = from_blender(flat, width, height, 4)
    if image.is_float and image.colorspace_settings.name not in _DISPLAY_SPACES:
        pixels[..., :3] = linear_to_srgb(pixels[..., :3])
    return pixels


def write_rgba(image: bpy.types.Image, pixels: np.ndarray) -> None:
    """Replace a byte image's pixels with a top-down (h, w, 4) array of display values."""
    image.pixels.foreach_set(to_blender(pixels))
    image.update()


def new_image(
    name: str, width: int, height: int, color: tuple[float, float, float, float], alpha: bool
) -> bpy.types.Image:
    image = bpy.data.images.new(name, width, height, alpha=alpha)
    image.generated_color = color
    return image


def mark_helper(image: bpy.types.Image, role: str, target: str | None) -> bpy.types.Image:
    """Mark an image Regia made beside a target (`role`: "paint layer", "canvas", "preview", ...), so that an
    editor showing it still works on `target`, and the image is never taken for a target of its own."""
    image[HELPER_KEY] = role
    if target:
        image[TARGET_KEY] = target
    return image


def new_paint_layer(name: str, width: int, height: int, target: str | None) -> bpy.types.Image:
    """A black grayscale image to paint a region's mask on (white is in), the size of what it masks."""
    return mark_helper(new_image(name, width, height, color=(0, 0, 0, 1), alpha=False), "paint layer", target)


def load_png(path: Path, name: str, existing: bpy.types.Image | None = None) -> bpy.types.Image:
    """Load (or reload in place) a PNG file as the image called `name`."""
    if existing is not None:
        existing.filepath = str(path)
        existing.reload()
        return existing
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    return image


def show_in_editors(image: bpy.types.Image, replacing: set[str] | None = None) -> None:
    """Show `image` in the unpinned image editors that show one of `replacing` (all of them when None)."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type != "IMAGE_EDITOR":
                continue
            space = area.spaces.active
            if space.use_image_pin:
                continue
            if replacing is None or (space.image is not None and space.image.name in replacing):
                space.image = image
                area.tag_redraw()


def redraw_image_editors() -> None:
    redraw(("IMAGE_EDITOR",))


def open_for_painting(context: bpy.types.Context, image: bpy.types.Image) -> None:
    """Show `image` in this image editor, in Paint mode (nothing when the operator did not run from one)."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image
        space.ui_mode = "PAINT"


def show_here(context: bpy.types.Context, image: bpy.types.Image) -> None:
    """Show `image` in this image editor, if the operator ran from one."""
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image
