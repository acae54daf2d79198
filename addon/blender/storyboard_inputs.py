"""Read a scene's storyboard into the pure builder's inputs (addon/storyboard.py): the style, and each shot with
its guides, region masks and blockout renders. A shot that cannot be built fails alone, with its message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bpy

from ..diffusion import KIND as DIFFUSION
from ..diffusion import DiffusionInput
from ..spec_builder import Blobs, GuideInput, InputError
from ..storyboard import ShotInput, StyleInput, shot_entry, storyboard_canvas, storyboard_head
from .images import read_rgba
from .inputs import _float, diffusion_input, guide_input, region_inputs
from .storyboard_blockout import render_blockout, store
from .storyboard_props import new_uid


@dataclass
class Prepared:
    """A storyboard file (blob refs) holding the shots that built, and why the others did not."""

    storyboard: dict[str, Any]
    blobs: dict[str, bytes]
    uids: list[str]  # the shot uid of each entry of storyboard["shots"]
    errors: dict[str, str] = field(default_factory=dict)  # shot uid -> message


def style_input(storyboard: bpy.types.PropertyGroup) -> StyleInput:
    images = []
    for index, item in enumerate(storyboard.style_images):
        if item.image is None:
            raise InputError(f"storyboard style image {index + 1}", "no image is set", allowed="pick one, or remove it")
        try:
            images.append((item.image.name, read_rgba(item.image)))
        except ValueError as error:
            raise InputError(f"storyboard style image '{item.image.name}'", str(error)) from None
    diffusion = storyboard.generator == DIFFUSION
    return StyleInput(
        name=storyboard.name,
        width=storyboard.width,
        height=storyboard.height,
        steps=storyboard.diffusion_steps if diffusion else storyboard.steps,
        generator=storyboard.generator,
        preset="" if storyboard.preset == "NONE" else storyboard.preset,
        images=images,
        weight=_float(storyboard.style_weight),
        palette=storyboard.palette,
        palette_weight=_float(storyboard.palette_weight),
        prompt=storyboard.prompt,
        negative=storyboard.negative,
        clip_model=storyboard.clip_model,
        clip_weights=storyboard.clip_weights,
        seed=storyboard.seed,
        seed_rule=storyboard.seed_rule,
        preview_every=storyboard.preview_every,
        diffusion=diffusion_input(storyboard, "storyboard Diffusion Model") if diffusion else DiffusionInput(),
    )


def shot_input(scene: bpy.types.Scene, storyboard: bpy.types.PropertyGroup, shot: bpy.types.PropertyGroup) -> ShotInput:
    """The shot as the builder takes it; renders its blockout first when the shot uses one."""
    canvas = (storyboard.width, storyboard.height)
    guides = []
    for index, guide in enumerate(shot.guides):
        try:
            guides.append(guide_input(guide))
        except ValueError as error:  # e.g. an image whose file is missing
            raise InputError(f"shot '{shot.name}' guides[{index}]", str(error)) from None
    if shot.use_blockout:
        blockout = render_blockout(scene, shot, *canvas)
        store(shot, blockout)
        weight = _float(shot.blockout_weight)
        if shot.blockout in ("CONTENT", "BOTH"):
            guides.append(GuideInput(kind="CONTENT", weight=weight, image=blockout.render, image_name="blockout"))
        if shot.blockout in ("OUTLINE", "BOTH"):
            guides.append(GuideInput(kind="OUTLINE", weight=weight, image=blockout.outline, image_name="outline"))
    regions = region_inputs(shot, canvas, storyboard.generator == DIFFUSION)
    return ShotInput(
        name=shot.name,
        frame_start=shot.frame_start,
        frame_end=shot.frame_end,
        description=shot.description,
        negative=shot.negative,
        seed=shot.seed or None,
        guides=guides,
        regions=regions,
    )


def prepare(scene: bpy.types.Scene, shots: list[bpy.types.PropertyGroup]) -> Prepared:
    """Build the storyboard for `shots`. Storyboard-wide mistakes raise InputError; a shot's own go in `errors`."""
    storyboard = scene.regia_storyboard
    ensure_uids(storyboard)
    blobs = Blobs()
    style = style_input(storyboard)
    head = storyboard_head(style, blobs)
    canvas, drawn = storyboard_canvas(style), (storyboard.width, storyboard.height)
    entries, uids, errors = [], [], {}
    names = [s.name.strip() for s in storyboard.shots]
    for shot in shots:
        if names.count(shot.name.strip()) > 1:  # the file names shots, and per-shot seeds come from the name
            errors[shot.uid] = f"shot '{shot.name}': another shot has this name; rename one of them"
            continue
        try:
            entries.append(shot_entry(shot_input(scene, storyboard, shot), canvas, blobs, drawn, head))
            uids.append(shot.uid)
        except InputError as error:
            errors[shot.uid] = str(error)
        except RuntimeError as error:  # the blockout render failed
            errors[shot.uid] = f"shot '{shot.name}' blockout: the render failed: {error}"
    return Prepared(storyboard={**head, "shots": entries}, blobs=blobs.blobs, uids=uids, errors=errors)


def ensure_uids(storyboard: bpy.types.PropertyGroup) -> None:
    """Every shot has its own uid, also shots a script added or duplicated."""
    seen: set[str] = set()
    for shot in storyboard.shots:
        if not shot.uid or shot.uid in seen:
            shot.uid = new_uid()
        seen.add(shot.uid)
