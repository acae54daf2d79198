"""Regia's properties: settings per target image (regions, guides, the job's globals), job status and history.

Settings live on the target Image itself (`image.regia`), so every image keeps its own regions, and a result image
can carry a snapshot of the settings that made it (see snapshot.py).
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .paths import preset_names

GUIDE_KIND_ITEMS = [
    ("TEXT", "Text", "A prompt: what this region should show (needs a CLIP model)", "FONT_DATA", 0),
    ("NEGATIVE_TEXT", "Negative text", "What this region should NOT show (needs a CLIP model)", "CANCEL", 1),
    ("INSPIRATION", "Inspiration", "An image whose overall look the region moves towards (needs CLIP)", "LIGHT", 2),
    ("STYLE", "Style image", "An image whose colours and textures the region takes on", "BRUSH_DATA", 3),
    ("CONTENT", "Content image", "An image whose layout the region follows", "IMAGE_DATA", 4),
    ("SCRIBBLE", "Scribble", "Colour strokes on a transparent image the target's size", "GREASEPENCIL", 5),
    ("OUTLINE", "Outline", "Dark lines on a light image the target's size: edges follow them", "MOD_OUTLINE", 6),
    ("PALETTE", "Palette", "Pull colours towards these hex colours", "COLOR", 7),
]
MODE_ITEMS = [
    ("edit", "Edit", "Guides change this region", "GREASEPENCIL", 0),
    ("keep", "Keep", "This region stays exactly as in the target", "LOCKED", 1),
    ("embolden", "Embolden", "Strengthen this region's own character, within bounds", "LIGHT_SUN", 2),
]
SOURCE_ITEMS = [
    ("MASK_LAYER", "Mask layer", "A layer of a Mask drawn in the image editor's Mask mode", "MOD_MASK", 0),
    ("PAINT", "Paint layer", "A grayscale image painted in Paint mode: white is in", "BRUSH_DATA", 1),
    ("COLOR_KEY", "Colour key", "One colour of the target's shared region-map image", "COLOR", 2),
]
GENERATOR_ITEMS = [
    ("pixels", "Pixels", "A pixel pyramid: fast, faithful to the target (default)"),
    ("fourier", "Fourier", "Decorrelated Fourier coefficients: smoother, for text guidance"),
]
OPTIMIZER_ITEMS = [("adam", "Adam", ""), ("adamw", "AdamW", ""), ("sgd", "SGD", "")]
SCHEDULE_ITEMS = [("cosine", "Cosine", ""), ("constant", "Constant", ""), ("linear", "Linear", "")]
JOB_STATE_ITEMS = [
    (s, s.title(), "")
    for s in ("IDLE", "STARTING", "UPLOADING", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "INTERRUPTED")
]
ERROR_KIND_ITEMS = [
    ("NONE", "None", ""),
    ("UNREACHABLE", "Engine unreachable", ""),
    ("FAILED", "Job failed", ""),
    ("MODELS", "Models missing", ""),
    ("INPUT", "Settings", ""),
]

# Blender keeps only a pointer to dynamic enum strings: they must outlive the callback, hence this cache.
_preset_items: list[tuple[str, str, str]] = []


def _presets(_self: object, _context: object) -> list[tuple[str, str, str]]:
    items = [("NONE", "None", "No preset")] + [(n, n.title(), f"The {n} preset") for n in preset_names()]
    _preset_items[:] = items
    return _preset_items


class RegiaGuide(bpy.types.PropertyGroup):
    kind: EnumProperty(name="Kind", items=GUIDE_KIND_ITEMS, default="STYLE")
    weight: FloatProperty(name="Weight", default=1.0, min=0.0, soft_max=4.0, max=100.0)
    text: StringProperty(name="Text", description="The prompt")
    image: PointerProperty(name="Image", type=bpy.types.Image)
    colors: StringProperty(name="Colours", description="Hex colours, e.g. #223344 #ddcc88", default="#223344 #ddcc88")


class RegiaRegion(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", default="region")
    enabled: BoolProperty(name="Enabled", default=True, description="Include this region in the next job")
    source: EnumProperty(name="Source", items=SOURCE_ITEMS, default="MASK_LAYER")
    mask: PointerProperty(name="Mask", type=bpy.types.Mask)
    layer: StringProperty(name="Layer", description="The mask layer's name")
    paint_image: PointerProperty(name="Paint layer", type=bpy.types.Image)
    key_color: FloatVectorProperty(name="Key", subtype="COLOR_GAMMA", size=3, min=0.0, max=1.0, default=(1.0, 0.0, 0.0))
    invert: BoolProperty(name="Invert", description="Use everything outside the painted area")
    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default="edit")
    feather: FloatProperty(name="Feather", description="Soft edge, in pixels", default=0.0, min=0.0, max=256.0)
    strength: FloatProperty(name="Strength", description="How far embolden goes", default=1.0, min=0.0, max=4.0)
    guides: CollectionProperty(type=RegiaGuide)
    active_guide: IntProperty(name="Active guide")


class RegiaSettings(bpy.types.PropertyGroup):
    """Everything the artist sets for one target image; snapshot.py stores a copy on each result."""

    regions: CollectionProperty(type=RegiaRegion)
    active_region: IntProperty(name="Active region")
    guides: CollectionProperty(type=RegiaGuide, description="Guides for every edit region")
    active_guide: IntProperty(name="Active guide")
    region_map: PointerProperty(name="Region map", type=bpy.types.Image, description="Colour-key regions' image")
    use_init: BoolProperty(name="Start from target", default=True, description="Start from the target's pixels")
    scale: FloatProperty(
        name="Scale", default=1.0, min=0.01, max=4.0, soft_max=1.0, subtype="FACTOR",
        description="Generate at this fraction of the target's size (smaller is faster)",
    )  # fmt: skip
    steps: IntProperty(name="Steps", default=200, min=1, max=100_000, soft_max=2000)
    seed: IntProperty(name="Seed", default=0, min=0)
    preset: EnumProperty(name="Preset", items=_presets)
    generator: EnumProperty(name="Generator", items=GENERATOR_ITEMS, default="pixels")
    optimizer: EnumProperty(name="Optimiser", items=OPTIMIZER_ITEMS, default="adam")
    lr: FloatProperty(name="Learning rate", default=0.05, min=0.0001, max=10.0, precision=4)
    schedule: EnumProperty(name="Schedule", items=SCHEDULE_ITEMS, default="cosine")
    tv: FloatProperty(name="Smoothness", description="Total-variation weight", default=0.0, min=0.0, max=100.0)
    saturation: FloatProperty(name="Saturation", default=0.0, min=-100.0, max=100.0)
    symmetry: FloatProperty(name="Symmetry", default=0.0, min=0.0, max=100.0)
    clip_model: StringProperty(name="CLIP model", description="open_clip name, e.g. ViT-B-32; empty for none")
    clip_weights: StringProperty(
        name="CLIP weights", description="open_clip pretrained tag (e.g. laion2b_s34b_b79k) or a checkpoint file"
    )
    preview_every: IntProperty(name="Preview every", default=10, min=0, max=10_000, description="Steps per preview")


class RegiaJobStatus(bpy.types.PropertyGroup):
    """The target's current or last job, as the timer last saw it."""

    state: EnumProperty(items=JOB_STATE_ITEMS, default="IDLE")
    job_id: StringProperty()
    step: IntProperty()
    steps: IntProperty()
    fraction: FloatProperty(min=0.0, max=1.0)
    eta_seconds: FloatProperty()
    message: StringProperty()
    error_kind: EnumProperty(items=ERROR_KIND_ITEMS, default="NONE")


class RegiaHistoryItem(bpy.types.PropertyGroup):
    image: PointerProperty(type=bpy.types.Image)
    job_id: StringProperty()
    seconds: FloatProperty()
    summary: StringProperty()


CLASSES: tuple[type, ...] = (RegiaGuide, RegiaRegion, RegiaSettings, RegiaJobStatus, RegiaHistoryItem)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Image.regia = PointerProperty(type=RegiaSettings)
    bpy.types.Image.regia_job = PointerProperty(type=RegiaJobStatus)
    bpy.types.Image.regia_history = CollectionProperty(type=RegiaHistoryItem)
    bpy.types.Image.regia_active_history = IntProperty(name="Active result")
    bpy.types.Scene.regia_target = PointerProperty(
        name="Target", type=bpy.types.Image, description="The image Regia generates from; it is never overwritten"
    )


def unregister() -> None:
    for name in ("regia", "regia_job", "regia_history", "regia_active_history"):
        delattr(bpy.types.Image, name)
    del bpy.types.Scene.regia_target
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
