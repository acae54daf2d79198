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

from ...regia_contract.limits import MAX_CFG, MAX_STEPS, MAX_WEIGHT
from .. import diffusion
from ..guide_kinds import DEFAULT_KIND, WEIGHT_TOOLTIP, axis_items, enum_items
from .clip_models import clip_choice_property
from .paths import preset_names

MODE_ITEMS = [
    ("edit", "Edit", "Guides change this region", "GREASEPENCIL", 0),
    ("keep", "Keep", "This region stays exactly as in the target", "LOCKED", 1),
    ("embolden", "Embolden", "Strengthen this region's own character, within bounds", "LIGHT_SUN", 2),
]
SOURCE_ITEMS = [
    ("MASK_LAYER", "Mask Layer", "A layer of a Mask drawn in the image editor's Mask mode", "MOD_MASK", 0),
    ("PAINT", "Paint Layer", "A grayscale image painted in Paint mode: white is in", "BRUSH_DATA", 1),
    ("COLOR_KEY", "Color Key", "One color of the target's shared region-map image", "COLOR", 2),
    (
        "MATERIAL_SLOT", "Material Slot",
        "The faces of one material slot of the texture's object, through its UV map", "MATERIAL", 3,
    ),
]  # fmt: skip
GENERATOR_ITEMS = [  # numbers as .blend files store them
    ("pixels", "Pixels", "A pixel pyramid: fast, faithful to the target (default)", "TEXTURE", 0),
    ("fourier", "Fourier", "Decorrelated Fourier coefficients: smoother, for text guidance", "FORCE_HARMONIC", 1),
    ("diffusion", "Diffusion", diffusion.TOOLTIPS["generator"], "MOD_NOISE", 2),
]
OPTIMIZER_ITEMS = [
    ("adam", "Adam", "Adaptive steps per pixel: the usual choice"),
    ("adamw", "AdamW", "Adam with weight decay"),
    ("sgd", "SGD", "Plain gradient descent with momentum"),
]
SCHEDULE_ITEMS = [
    ("cosine", "Cosine", "The learning rate eases down to zero along a cosine"),
    ("constant", "Constant", "The same learning rate for every step"),
    ("linear", "Linear", "The learning rate falls in a straight line to zero"),
]
JOB_STATE_ITEMS = [
    (s, s.title(), "")
    for s in ("IDLE", "STARTING", "UPLOADING", "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "INTERRUPTED")
]
ERROR_KIND_ITEMS = [
    ("NONE", "None", ""),
    ("UNREACHABLE", "Engine Unreachable", ""),
    ("FAILED", "Job Failed", ""),
    ("MODELS", "Models Missing", ""),
    ("INPUT", "Settings", ""),
]


# ---- the diffusion generator's properties, shared by a target's settings and a storyboard ------------------------


def sampler_property() -> EnumProperty:
    return EnumProperty(
        name="Sampler", items=diffusion.sampler_items(), default="euler", description=diffusion.TOOLTIPS["sampler"]
    )


def diffusion_steps_property() -> IntProperty:
    return IntProperty(
        name="Steps", default=diffusion.DEFAULT_STEPS, min=1, max=MAX_STEPS, soft_max=150,
        description=diffusion.TOOLTIPS["steps"],
    )  # fmt: skip


def cfg_property() -> FloatProperty:
    return FloatProperty(
        name="CFG Scale", default=diffusion.DEFAULT_SCALE, min=0.0, max=MAX_CFG, soft_max=15.0, precision=1,
        description=diffusion.TOOLTIPS["cfg"],
    )  # fmt: skip


def guidance_every_property() -> IntProperty:
    return IntProperty(
        name="Guidance Every", default=diffusion.DEFAULT_GUIDANCE_EVERY, min=1, max=diffusion.MAX_GUIDANCE_EVERY,
        soft_max=10, description=diffusion.TOOLTIPS["guidance_every"],
    )  # fmt: skip


def guidance_strength_property() -> FloatProperty:
    return FloatProperty(
        name="Guidance Strength", default=diffusion.DEFAULT_GUIDANCE_STRENGTH, min=0.0,
        max=diffusion.MAX_GUIDANCE_STRENGTH, soft_max=4.0, description=diffusion.TOOLTIPS["guidance_strength"],
    )  # fmt: skip


def diffusion_model_property() -> StringProperty:
    return StringProperty(name="Diffusion Model", description=diffusion.TOOLTIPS["model"])


# Blender keeps only a pointer to dynamic enum strings: they must outlive the callback, hence this cache.
_preset_items: list[tuple[str, str, str]] = []


def _presets(_self: object, _context: object) -> list[tuple[str, str, str]]:
    items = [("NONE", "None", "No preset")] + [(n, n.title(), f"The {n} preset") for n in preset_names()]
    _preset_items[:] = items
    return _preset_items


class RegiaGuide(bpy.types.PropertyGroup):
    """One guide; which of its properties count is its kind's business (addon/guide_kinds.py)."""

    kind: EnumProperty(name="Kind", items=enum_items(), default=DEFAULT_KIND, description="What the guide asks for")
    weight: FloatProperty(
        name="Weight", default=1.0, min=-MAX_WEIGHT, max=MAX_WEIGHT, soft_min=-4.0, soft_max=4.0,
        description=WEIGHT_TOOLTIP,
    )  # fmt: skip
    text: StringProperty(name="Text", description="The prompt: what the region should show (or, negative, not show)")
    image: PointerProperty(name="Image", type=bpy.types.Image, description="The guide's image")
    colors: StringProperty(name="Colors", description="Hex colors, e.g. #223344 #ddcc88", default="#223344 #ddcc88")
    axis: EnumProperty(
        name="Axis", items=axis_items(), default="vertical",
        description="Where the mirror stands: through the middle of the region's own bounds",
    )  # fmt: skip


def shown_name(description: str) -> StringProperty:
    """The `name` of a PropertyGroup as the panels draw it. Blender gives a PropertyGroup's own `name` its default
    tooltip ("Unique name used in the code and scripting") whatever description it is declared with: this one
    reads and writes that name, with a tooltip of its own."""

    def get(self: bpy.types.PropertyGroup) -> str:
        return self.name

    def set_(self: bpy.types.PropertyGroup, value: str) -> None:
        self.name = value

    return StringProperty(name="Name", description=description, get=get, set=set_)


class RegiaRegion(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", default="region", description="The region's name, as errors and the spec say it")
    label: shown_name("The region's name, as errors and the spec say it")
    enabled: BoolProperty(name="Enabled", default=True, description="Include this region in the next job")
    source: EnumProperty(
        name="Source", items=SOURCE_ITEMS, default="MASK_LAYER", description="Where the mask comes from"
    )
    mask: PointerProperty(name="Mask", type=bpy.types.Mask, description="The Mask whose layer is the region")
    layer: StringProperty(name="Layer", description="The mask layer's name")
    paint_image: PointerProperty(name="Paint Layer", type=bpy.types.Image, description="White is in, black out")
    key_color: FloatVectorProperty(
        name="Key", subtype="COLOR_GAMMA", size=3, min=0.0, max=1.0, default=(1.0, 0.0, 0.0),
        description="The region map's color that marks this region",
    )  # fmt: skip
    invert: BoolProperty(name="Invert", description="Use everything outside the painted area")
    slot: IntProperty(name="Slot", min=0, description="The material slot whose faces, in the UV map, are the region")
    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default="edit", description="What happens to the region")
    feather: FloatProperty(name="Feather", description="Soft edge, in pixels", default=0.0, min=0.0, max=256.0)
    strength: FloatProperty(name="Strength", description="How far embolden goes", default=1.0, min=0.0, max=4.0)
    use_guidance_scale: BoolProperty(name="Own Guidance Scale", description=diffusion.TOOLTIPS["use_guidance_scale"])
    guidance_scale: FloatProperty(
        name="Guidance Scale", default=diffusion.DEFAULT_SCALE, min=0.0, max=MAX_CFG, soft_max=15.0, precision=1,
        description=diffusion.TOOLTIPS["guidance_scale"],
    )  # fmt: skip
    use_own_strength: BoolProperty(name="Own Strength", description=diffusion.TOOLTIPS["use_own_strength"])
    own_strength: FloatProperty(
        name="Strength", default=0.5, min=0.01, max=1.0, precision=2, subtype="FACTOR",
        description=diffusion.TOOLTIPS["own_strength"],
    )  # fmt: skip
    guides: CollectionProperty(type=RegiaGuide)
    active_guide: IntProperty(name="Active Guide")


class RegiaSettings(bpy.types.PropertyGroup):
    """Everything the artist sets for one target image; snapshot.py stores a copy on each result."""

    regions: CollectionProperty(type=RegiaRegion)
    active_region: IntProperty(name="Active Region")
    guides: CollectionProperty(type=RegiaGuide, description="Guides for every edit region")
    active_guide: IntProperty(name="Active Guide")
    region_map: PointerProperty(name="Region Map", type=bpy.types.Image, description="Color-key regions' image")
    use_init: BoolProperty(name="Start from Target", default=True, description="Start from the target's pixels")
    scale: FloatProperty(
        name="Scale", default=1.0, min=0.01, max=4.0, soft_max=1.0, subtype="FACTOR",
        description="Generate at this fraction of the target's size (smaller is faster)",
    )  # fmt: skip
    steps: IntProperty(
        name="Steps", default=200, min=1, max=100_000, soft_max=2000, description="Optimization steps: more is slower"
    )
    seed: IntProperty(name="Seed", default=0, min=0, description="The same seed and settings give the same image")
    lock_seed: BoolProperty(
        name="Lock Seed", default=False,
        description="Keep this seed for every Generate (the same settings then give the same image); unlocked, "
        "each Generate picks a new seed and shows it here",
    )  # fmt: skip
    variations: IntProperty(
        name="Variations", default=4, min=2, max=9,
        description="How many images Generate Variations makes, each with its own seed (or preset)",
    )  # fmt: skip
    vary: EnumProperty(
        name="Vary", default="SEED", description="What differs between the variations",
        items=[("SEED", "Seeds", "The same settings with seeds base, base + 1, ...", "RNA", 0),
               ("PRESET", "Presets", "The same settings and seed, each with another style preset", "BRUSHES_ALL", 1)],
    )  # fmt: skip
    preset: EnumProperty(name="Preset", items=_presets, description="A style preset: its defaults, your settings win")
    generator: EnumProperty(
        name="Generator", items=GENERATOR_ITEMS, default="pixels", description="How pixels are made"
    )
    optimizer: EnumProperty(name="Optimizer", items=OPTIMIZER_ITEMS, default="adam", description="How each step moves")
    lr: FloatProperty(
        name="Learning Rate", default=0.05, min=0.0001, max=10.0, precision=4, description="How far each step moves"
    )
    schedule: EnumProperty(
        name="Schedule", items=SCHEDULE_ITEMS, default="cosine", description="How the learning rate changes"
    )
    # The whole canvas's losses (the spec's `losses`); per region they are guides (Smoothness, Saturation, Symmetry).
    tv: FloatProperty(
        name="Smoothness", default=0.0, min=0.0, max=100.0,
        description="Fewer, softer changes between neighbouring pixels, over the whole image",
    )  # fmt: skip
    saturation: FloatProperty(
        name="Saturation", default=0.0, min=-100.0, max=100.0,
        description="More colorful over the whole image; negative grays it",
    )  # fmt: skip
    symmetry: FloatProperty(
        name="Symmetry", default=0.0, min=0.0, max=100.0,
        description="Left and right mirror each other over the whole image",
    )  # fmt: skip
    clip_model: StringProperty(name="CLIP Model", description="open_clip name, e.g. ViT-B-32; empty for none")
    clip_choice: clip_choice_property()
    clip_weights: StringProperty(
        name="CLIP Weights", description="open_clip pretrained tag (e.g. laion2b_s34b_b79k) or a checkpoint file"
    )
    preview_every: IntProperty(
        name="Preview Every", default=10, min=0, max=10_000, description="Steps between previews (0: none)"
    )
    # The diffusion generator's settings (the optimizer's above count for the other generators).
    diffusion_model: diffusion_model_property()
    sampler: sampler_property()
    diffusion_steps: diffusion_steps_property()
    cfg: cfg_property()
    diffusion_strength: FloatProperty(
        name="Strength", default=1.0, min=0.01, max=1.0, subtype="FACTOR", description=diffusion.TOOLTIPS["strength"]
    )
    guidance_every: guidance_every_property()
    guidance_strength: guidance_strength_property()
    tileable: BoolProperty(
        name="Tileable",
        description="The image repeats without a seam: its left edge meets its right and its top meets its bottom",
    )
    # For a texture (the image an object's Regia Texture panel made): material-slot regions read its UVs.
    texture_object: PointerProperty(
        name="Object", type=bpy.types.Object,
        description="The object this image is a texture of: each material slot's faces, through its UV map, are "
        "a region",
    )  # fmt: skip
    uv_map: StringProperty(name="UV Map", description="The UV map the texture is laid out in (empty: the active one)")
    bleed: IntProperty(
        name="Bleed", default=8, min=0, max=64, subtype="PIXEL",
        description="How many texels each slot's region grows past its UV islands' edges, so no seam shows where "
        "the texture is filtered or mipmapped",
    )  # fmt: skip


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


class RegiaVariation(bpy.types.PropertyGroup):
    """One image of the target's last Generate Variations: its seed, its job, its result until one is picked."""

    seed: IntProperty(name="Seed", description="The seed this variation was made with")
    preset: StringProperty(name="Preset", description="The preset this variation was made with (Vary: Presets)")
    image: PointerProperty(type=bpy.types.Image, description="The variation's image")
    status: PointerProperty(type=RegiaJobStatus)


def _is_camera(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


class RegiaTextureView(bpy.types.PropertyGroup):
    """One camera's view of a texture's object: an image of its own (the scene from that camera, a region per
    material slot) that Generate paints and Bake Views projects back into the texture."""

    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=_is_camera, description="The camera this view is seen from"
    )
    image: PointerProperty(
        name="View", type=bpy.types.Image, description="The view's image: generate it like any target, then bake"
    )


class RegiaHistoryItem(bpy.types.PropertyGroup):
    image: PointerProperty(type=bpy.types.Image, description="The result image")
    job_id: StringProperty(description="The engine's job")
    seconds: FloatProperty(description="How long the job took")
    summary: StringProperty(description="Size, steps, seed and time")


CLASSES: tuple[type, ...] = (
    RegiaGuide, RegiaRegion, RegiaSettings, RegiaJobStatus, RegiaVariation, RegiaTextureView, RegiaHistoryItem,
)  # fmt: skip


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Image.regia = PointerProperty(type=RegiaSettings)
    bpy.types.Image.regia_job = PointerProperty(type=RegiaJobStatus)
    bpy.types.Image.regia_history = CollectionProperty(type=RegiaHistoryItem)
    bpy.types.Image.regia_active_history = IntProperty(name="Active Result")
    bpy.types.Image.regia_variations = CollectionProperty(type=RegiaVariation)
    bpy.types.Image.regia_views = CollectionProperty(type=RegiaTextureView)
    bpy.types.Image.regia_active_view = IntProperty(name="Active View")
    bpy.types.Object.regia_texture = PointerProperty(
        name="Texture", type=bpy.types.Image,
        description="The texture Regia generates for this object; results are new images, wired into its materials",
    )  # fmt: skip
    bpy.types.Scene.regia_target = PointerProperty(
        name="Target", type=bpy.types.Image, description="The image Regia generates from; it is never overwritten"
    )


def unregister() -> None:
    names = ("regia", "regia_job", "regia_history", "regia_active_history", "regia_variations", "regia_views",
             "regia_active_view")  # fmt: skip
    for name in names:
        delattr(bpy.types.Image, name)
    del bpy.types.Scene.regia_target
    del bpy.types.Object.regia_texture
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
