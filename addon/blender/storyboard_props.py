"""A storyboard per scene (`scene.regia_storyboard`): one style for every shot, and the shots, each with its
frames, camera, words, optional guides and regions, job status and the versions generated for it.

Shots reuse the image editor's RegiaGuide and RegiaRegion, and a shot's job status is a RegiaJobStatus, so the
runtime's progress code serves both.
"""

from __future__ import annotations

import uuid

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .clip_models import clip_choice_property
from .props import (
    GENERATOR_ITEMS,
    RegiaGuide,
    RegiaJobStatus,
    RegiaRegion,
    _presets,
    cfg_property,
    diffusion_model_property,
    diffusion_steps_property,
    guidance_every_property,
    guidance_strength_property,
    sampler_property,
    shown_name,
)

SEED_RULE_ITEMS = [
    ("fixed", "Fixed", "Every shot uses the storyboard's seed"),
    ("per_shot", "Per Shot", "Each shot gets a seed of its own, derived from the storyboard's seed and its name"),
]
BLOCKOUT_ITEMS = [
    ("CONTENT", "Content", "The render's layout guides the shot"),
    ("OUTLINE", "Outline", "Edges of the render guide the shot's lines"),
    ("BOTH", "Both", "Layout and edges"),
]


def _is_camera(_self: object, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


def new_uid() -> str:
    """A shot's identity: it survives renaming and reordering, and marks the shot's strip in the Sequencer."""
    return uuid.uuid4().hex[:12]


class RegiaImageItem(bpy.types.PropertyGroup):
    image: PointerProperty(name="Image", type=bpy.types.Image, description="A style image every shot takes after")


class RegiaShotVersion(bpy.types.PropertyGroup):
    image: PointerProperty(type=bpy.types.Image)
    job_id: StringProperty()
    seed: StringProperty(description="The seed it ran with (up to 2^32 - 1: more than an int property holds)")
    shot_seed: IntProperty(description="The shot's Seed setting that made it (0: the storyboard's rule)")
    seconds: FloatProperty()
    path: StringProperty(subtype="FILE_PATH", description="The PNG the Sequencer strip shows")


class RegiaShot(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", default="Shot")
    label: shown_name("The shot's name: its strip, its files and its errors say it")
    uid: StringProperty(options={"HIDDEN"})
    frame_start: IntProperty(name="Start", default=1, description="The shot's first frame")
    frame_end: IntProperty(name="End", default=24, description="The shot's last frame")
    camera: PointerProperty(
        name="Camera", type=bpy.types.Object, poll=_is_camera, description="The shot's camera (empty: the scene's)"
    )
    description: StringProperty(name="Description", description="What the shot shows: its text guide")
    negative: StringProperty(name="Negative", description="What the shot should not show")
    seed: IntProperty(name="Seed", default=0, min=0, description="0: the storyboard's seed rule")
    lock_seed: BoolProperty(
        name="Lock Seed",
        description="Regenerate Shot keeps this shot's seed (the same image again); unlocked, each Regenerate Shot "
        "is a new take with a new seed",
    )
    guides: CollectionProperty(type=RegiaGuide)
    active_guide: IntProperty()
    regions: CollectionProperty(type=RegiaRegion)
    active_region: IntProperty()
    region_map: PointerProperty(name="Region Map", type=bpy.types.Image, description="Color-key regions' image")
    use_blockout: BoolProperty(name="Blockout", description="Render the camera's view and use it as a guide")
    blockout: EnumProperty(
        name="Use", items=BLOCKOUT_ITEMS, default="BOTH", description="What of the blockout render guides the shot"
    )
    blockout_weight: FloatProperty(
        name="Blockout Weight", default=1.0, min=0.0, max=100.0, soft_max=4.0,
        description="How strongly the blockout guides the shot",
    )  # fmt: skip
    blockout_image: PointerProperty(type=bpy.types.Image, description="The last blockout render")
    outline_image: PointerProperty(type=bpy.types.Image, description="Edges of the last blockout render")
    job: PointerProperty(type=RegiaJobStatus)
    image: PointerProperty(name="Image", type=bpy.types.Image, description="The shot's current image")
    versions: CollectionProperty(type=RegiaShotVersion)
    active_version: IntProperty()
    next_version: IntProperty(default=1, description="Version numbers only grow: files are never overwritten")


class RegiaStoryboard(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", default="Storyboard", description="Also the Sequencer channel's name")
    label: shown_name("The storyboard's name: its shots' files and the Sequencer channel say it")
    shots: CollectionProperty(type=RegiaShot)
    active_shot: IntProperty(name="Active Shot")
    # The style every shot shares.
    preset: EnumProperty(name="Preset", items=_presets, description="A style preset: its defaults, your settings win")
    style_images: CollectionProperty(type=RegiaImageItem)
    active_style_image: IntProperty()
    style_weight: FloatProperty(
        name="Style Weight", default=1.0, min=0.0, max=100.0, soft_max=4.0,
        description="How strongly the style images guide every shot",
    )  # fmt: skip
    palette: StringProperty(name="Palette", description="Hex colors, e.g. #223344 #ddcc88; empty for none")
    palette_weight: FloatProperty(
        name="Palette Weight", default=0.3, min=0.0, max=100.0, soft_max=4.0,
        description="How strongly every shot keeps to the palette",
    )  # fmt: skip
    prompt: StringProperty(name="Style Prompt", description="Added to every shot; {prompt} is the description")
    negative: StringProperty(name="Style Negative", description="What no shot should show")
    # How each shot is made.
    generator: EnumProperty(
        name="Generator", items=GENERATOR_ITEMS, default="pixels", description="How each shot's pixels are made"
    )
    width: IntProperty(name="Width", default=320, min=16, max=2048, description="Every shot's width, in pixels")
    height: IntProperty(name="Height", default=180, min=16, max=2048, description="Every shot's height, in pixels")
    steps: IntProperty(
        name="Steps", default=150, min=1, max=100_000, soft_max=2000, description="Optimization steps: more is slower"
    )
    seed: IntProperty(name="Seed", default=0, min=0, description="The same seed and settings give the same shots")
    seed_rule: EnumProperty(
        name="Seeds", items=SEED_RULE_ITEMS, default="per_shot", description="Where each shot's seed comes from"
    )
    clip_model: StringProperty(name="CLIP Model", description="open_clip name, e.g. ViT-B-32; empty for none")
    clip_choice: clip_choice_property()
    clip_weights: StringProperty(name="CLIP Weights", description="open_clip pretrained tag or a checkpoint file")
    preview_every: IntProperty(
        name="Preview Every", default=10, min=0, max=10_000, description="Steps between previews (0: none)"
    )
    # The diffusion generator's settings (shots start from no image, so there is no strength).
    diffusion_model: diffusion_model_property()
    sampler: sampler_property()
    diffusion_steps: diffusion_steps_property()
    cfg: cfg_property()
    guidance_every: guidance_every_property()
    guidance_strength: guidance_strength_property()
    # Where shots go.
    channel: IntProperty(name="Channel", default=2, min=1, max=128, description="The Sequencer channel for shots")
    default_length: IntProperty(name="Shot Length", default=24, min=1, description="Frames for a new shot")
    text: PointerProperty(name="Text", type=bpy.types.Text, description="Lines 'Shot name: description'")
    folder: StringProperty(
        name="Folder", subtype="DIR_PATH", description="Where shot images go (empty: beside the .blend, or Regia's own)"
    )
    message: StringProperty(description="What the last storyboard operation has to say")


CLASSES: tuple[type, ...] = (RegiaImageItem, RegiaShotVersion, RegiaShot, RegiaStoryboard)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.regia_storyboard = PointerProperty(type=RegiaStoryboard)


def unregister() -> None:
    del bpy.types.Scene.regia_storyboard
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
