"""Read what the artist set up (properties, mask layers, paint layers) into the pure spec builder's inputs."""

from __future__ import annotations

import bpy
import numpy as np

from ..diffusion import KIND as DIFFUSION
from ..diffusion import DiffusionInput, Unlisted, resolve_model
from ..guide_kinds import KINDS
from ..mask_raster import FeatherPoint, MaskLayer, Spline, SplinePoint, rasterise_layer
from ..region_maps import color_key_mask, paint_mask
from ..spec_builder import GuideInput, InputError, JobInput, RegionInput
from . import connection, texture_regions
from .images import read_rgba, size_of


def _float(value: float) -> float:
    """Blender stores float properties in single precision: 0.05 reads back as 0.05000000074505806. Seven
    significant digits is what float32 holds, so the spec shows the number the artist typed."""
    return float(f"{value:.7g}")


def mask_layer_data(layer: bpy.types.MaskLayer) -> MaskLayer:
    """Copy a Blender mask layer's splines into the rasteriser's plain dataclasses."""
    splines = []
    for spline in layer.splines:
        points = [
            SplinePoint(
                co=tuple(p.co),
                handle_left=tuple(p.handle_left),
                handle_right=tuple(p.handle_right),
                weight=float(p.weight),
                feather_points=[FeatherPoint(u=float(f.u), weight=float(f.weight)) for f in p.feather_points],
            )
            for p in spline.points
        ]
        splines.append(
            Spline(
                points=points,
                cyclic=bool(spline.use_cyclic),
                fill=bool(spline.use_fill),
                offset_mode=str(spline.offset_mode),
                weight_interpolation=str(spline.weight_interpolation),
            )
        )
    return MaskLayer(
        splines=splines,
        alpha=float(layer.alpha),
        invert=bool(layer.invert),
        blend=str(layer.blend),
        fill_holes=bool(layer.use_fill_holes),
        fill_overlap=bool(layer.use_fill_overlap),
        falloff=str(layer.falloff),
    )


def region_mask(
    region: bpy.types.PropertyGroup, settings: bpy.types.PropertyGroup, size: tuple[int, int]
) -> np.ndarray:
    """The region's mask at the target's size, top row first."""
    where = f"region '{region.name}'"
    width, height = size
    if region.source == "MASK_LAYER":
        if region.mask is None:
            raise InputError(f"{where} mask", "no Mask is set", allowed="pick a Mask and one of its layers")
        layer = region.mask.layers.get(region.layer)
        if layer is None:
            known = ", ".join(lay.name for lay in region.mask.layers) or "none"
            raise InputError(f"{where} layer", f"Mask '{region.mask.name}' has no such layer", region.layer, known)
        return rasterise_layer(mask_layer_data(layer), width, height)
    if region.source == "MATERIAL_SLOT":
        mask = texture_regions.slot_mask(settings, region.slot, size, where)
        return 1.0 - mask if region.invert else mask
    image = region.paint_image if region.source == "PAINT" else settings.region_map
    if image is None:
        what = "paint layer" if region.source == "PAINT" else "region map"
        raise InputError(f"{where} {what}", "no image is set", allowed=f"add a {what}")
    if size_of(image) != size:
        w, h = size_of(image)
        raise InputError(
            f"{where} image '{image.name}'", "it is not the target's size", f"{w}x{h}", f"{width}x{height}"
        )
    pixels = read_rgba(image)
    if region.source == "PAINT":
        return paint_mask(pixels, invert=region.invert)
    mask = color_key_mask(pixels, tuple(region.key_color))
    return 1.0 - mask if region.invert else mask


def guide_input(guide: bpy.types.PropertyGroup) -> GuideInput:
    """Copy the guide's properties; its image only when its kind takes one (guide_kinds.KINDS)."""
    kind = KINDS.get(guide.kind)
    image = guide.image if kind is not None and "image" in kind.fields else None
    return GuideInput(
        kind=guide.kind,
        weight=_float(guide.weight),
        text=guide.text,
        image=read_rgba(image) if image is not None else None,
        image_name=image.name if image is not None else "",
        colors=guide.colors,
        axis=guide.axis,
    )


def region_inputs(owner: bpy.types.PropertyGroup, size: tuple[int, int], diffusion: bool = False) -> list[RegionInput]:
    """The enabled regions of a target's settings or a shot, masks at `size`, as the builder takes them.
    `owner` also holds the region map that colour-key regions read. A region's own guidance scale counts only with
    the diffusion generator."""
    return [
        RegionInput(
            name=r.name,
            mask=region_mask(r, owner, size),
            mode=r.mode,
            feather=_float(r.feather),
            strength=_float(r.strength),
            guides=[guide_input(g) for g in r.guides],
            guidance_scale=_float(r.guidance_scale) if diffusion and r.use_guidance_scale else None,
            init_strength=_float(r.own_strength) if diffusion and r.use_own_strength else None,
        )
        for r in owner.regions
        if r.enabled
    ]


def diffusion_input(owner: bpy.types.PropertyGroup, where: str = "Diffusion Model") -> DiffusionInput:
    """The diffusion settings of a target's settings or a storyboard; the model named by its entry of the
    preferences' Diffusion Models list (a name not in the list is an InputError, never a path of its own)."""
    weights = resolve_model(owner.diffusion_model, connection.diffusion_entries())
    if isinstance(weights, Unlisted):
        raise InputError(where, weights.message, weights.value, weights.allowed)
    return DiffusionInput(
        weights=weights,
        sampler=owner.sampler,
        cfg=_float(owner.cfg),
        strength=_float(getattr(owner, "diffusion_strength", 1.0)),
        guidance_every=owner.guidance_every,
        guidance_strength=_float(owner.guidance_strength),
    )


def job_input(target: bpy.types.Image) -> JobInput:
    settings = target.regia
    diffusion = settings.generator == DIFFUSION
    regions = region_inputs(settings, size_of(target), diffusion)
    return JobInput(
        target_name=target.name,
        target=read_rgba(target),
        use_init=settings.use_init,
        scale=settings.scale,
        regions=regions,
        guides=[guide_input(g) for g in settings.guides],
        seed=settings.seed,
        steps=settings.diffusion_steps if diffusion else settings.steps,
        generator=settings.generator,
        optimizer=settings.optimizer,
        lr=_float(settings.lr),
        schedule=settings.schedule,
        preset="" if settings.preset == "NONE" else settings.preset,
        tv=_float(settings.tv),
        saturation=_float(settings.saturation),
        symmetry=_float(settings.symmetry),
        clip_model=settings.clip_model.strip(),
        clip_weights=settings.clip_weights.strip(),
        preview_every=settings.preview_every,
        tileable=settings.tileable,
        diffusion=diffusion_input(settings) if diffusion else DiffusionInput(),
    )
