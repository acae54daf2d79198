"""What Regia's operators and panels act on: the target image and its active region, a scene's storyboard and its
shots. One place, so that image-editor and storyboard modules (and the generic lists) find them the same way."""

from __future__ import annotations

import bpy

# Custom properties on images Regia makes: TARGET_KEY names the target an image belongs to (results, the live
# preview, paint layers, canvases, region maps, mask previews); HELPER_KEY says what a helper image is for.
TARGET_KEY = "regia_target"
HELPER_KEY = "regia_helper"


def target_of(image: bpy.types.Image | None) -> bpy.types.Image | None:
    """The target `image` belongs to: itself, or for a result or one of Regia's helper images, its target. A helper
    whose target is gone (or that has none: a shot's canvas) is never a target itself."""
    if image is None:
        return None
    if TARGET_KEY in image:
        target = bpy.data.images.get(image[TARGET_KEY])
        if target is not None or HELPER_KEY in image:
            return target
        return image  # a result whose target was deleted: it can be worked on as a target of its own
    return None if HELPER_KEY in image else image


def editor_image(context: bpy.types.Context) -> bpy.types.Image | None:
    space = getattr(context, "space_data", None)
    return getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None


# Editors where the target is the active object's texture (its Regia Texture panels) rather than an image's.
OBJECT_SPACES = {"VIEW_3D", "PROPERTIES"}


def in_object_space(context: bpy.types.Context) -> bool:
    space = getattr(context, "space_data", None)
    return space is not None and space.type in OBJECT_SPACES


def object_texture(context: bpy.types.Context) -> bpy.types.Image | None:
    obj = getattr(context, "object", None)
    return getattr(obj, "regia_texture", None)


def target_image(context: bpy.types.Context) -> bpy.types.Image | None:
    """In the 3D Viewport and the Properties editor, the active object's texture; elsewhere the scene's Target,
    else the target of the image in this editor (a result, preview, paint layer, ... maps back to its target)."""
    if in_object_space(context):
        return object_texture(context)
    return target_of(context.scene.regia_target or editor_image(context))


def pin_target(context: bpy.types.Context) -> bpy.types.Image | None:
    """The target, made the scene's Target when none is set: the first operator that acts on the editor's image
    fixes it, so that the images Regia then shows in the editor (a paint layer, the mask, the live preview) never
    take its place. Operators only: drawing code cannot write properties."""
    target = target_image(context)
    if in_object_space(context):  # the object names its texture: the image editor's Target stays as it was
        return target
    if target is not None and context.scene.regia_target != target:
        context.scene.regia_target = target
    return target


def target_settings(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    target = target_image(context)
    return target.regia if target is not None else None


def pinned_settings(context: bpy.types.Context) -> bpy.types.PropertyGroup | None:
    """The target's settings, for an operator about to change them (see pin_target)."""
    target = pin_target(context)
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
