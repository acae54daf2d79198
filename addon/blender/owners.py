"""What Regia's operators and panels act on: the target image and its active region, a scene's storyboard and its
shots. One place, so that image-editor and storyboard modules (and the generic lists) find them the same way."""

from __future__ import annotations

import bpy


def target_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """The scene's target; else the image in this editor (a result or preview maps back to its target)."""
    image = context.scene.regia_target
    if image is None:
        space = getattr(context, "space_data", None)
        image = getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None
    if image is not None and "regia_target" in image:
        image = bpy.data.images.get(image["regia_target"], image)
    return image


def target_settings(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    target = target_image(context)
    return target.regia if target is not None else None


def active_region(target: bpy.types.Image | None) -> bpy.types.PropertyGroup | None:
    if target is None:
        return None
    settings = target.regia
    if 0 <= settings.active_region < len(settings.regions):
        return settings.regions[settings.active_region]
    return None


def storyboard_of(context: bpy.types.Context) -> bpy.types.PropertyGroup:
    return context.scene.regia_storyboard


def active_shot(storyboard: bpy.types.PropertyGroup) -> bpy.types.PropertyGroup | None:
    if 0 <= storyboard.active_shot < len(storyboard.shots):
        return storyboard.shots[storyboard.active_shot]
    return None


def shot_at(storyboard: bpy.types.PropertyGroup, index: int) -> bpy.types.PropertyGroup | None:
    """Shot `index`, or the active one for -1."""
    if index < 0:
        return active_shot(storyboard)
    return storyboard.shots[index] if index < len(storyboard.shots) else None


def find_shot(scene: bpy.types.Scene, uid: str) -> bpy.types.PropertyGroup | None:
    return next((shot for shot in scene.regia_storyboard.shots if shot.uid == uid), None)
