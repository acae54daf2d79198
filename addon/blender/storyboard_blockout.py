"""Blockouts: the shot's camera view of the scene, rendered quickly (Cycles on the CPU, a few samples, at the
storyboard's size), used as a `content` guide and/or an `outline` guide (edges found in pure numpy, edges.py).

Two renders: the scene as it is shaded, and a pass where every surface emits its normal, on a transparent film, so
creases and silhouettes show whatever the lighting. The scene's render settings, camera, frame and marker
bindings are put back afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..edges import edges, outline_drawing
from ..spec_builder import InputError
from .images import new_image, read_rgba, size_of, write_rgba

SAMPLES = 8  # enough for a layout; no denoiser, so the render is the same on every machine
PASS_SAMPLES = 4  # the normal pass is flat emission: samples only smooth its silhouettes
_NORMALS_MATERIAL = "Regia blockout normals"


@dataclass
class Blockout:
    render: np.ndarray  # top-down (h, w, 4) display values
    outline: np.ndarray  # top-down (h, w, 4): dark lines on white


def shot_camera(scene: bpy.types.Scene, shot: bpy.types.PropertyGroup) -> bpy.types.Object:
    camera = shot.camera or scene.camera
    if camera is None:
        raise InputError(
            f"shot '{shot.name}' blockout", "the shot has no camera, and neither has the scene",
            allowed="set the shot's camera (or the scene's), or turn the blockout off",
        )  # fmt: skip
    return camera


def render_blockout(scene: bpy.types.Scene, shot: bpy.types.PropertyGroup, width: int, height: int) -> Blockout:
    """Render the shot's view at `width` x `height` and find its edges."""
    camera = shot_camera(scene, shot)
    if not hasattr(scene, "cycles"):
        raise InputError(f"shot '{shot.name}' blockout", "it renders with Cycles, which is not enabled",
                         allowed="enable the Cycles add-on, or turn the blockout off")  # fmt: skip
    render, image_settings, view = scene.render, scene.render.image_settings, scene.view_settings
    settings: list[tuple[object, str, object]] = [
        (render, "engine", "CYCLES"),
        (render, "resolution_x", width),
        (render, "resolution_y", height),
        (render, "resolution_percentage", 100),
        (render, "pixel_aspect_x", 1.0),
        (render, "pixel_aspect_y", 1.0),
        (render, "use_border", False),
        (render, "use_sequencer", False),  # the storyboard's own strips must not replace the camera's view
        (render, "use_compositing", False),
        (render, "film_transparent", False),
    ]
    if hasattr(image_settings, "media_type"):  # 5.0: a video output must become an image output first
        settings.append((image_settings, "media_type", "IMAGE"))
    settings += [
        (image_settings, "file_format", "PNG"),
        (image_settings, "color_mode", "RGBA"),
        (image_settings, "color_depth", "8"),
        (view, "view_transform", "Standard"),
        (view, "look", "None"),
        (view, "exposure", 0.0),
        (view, "gamma", 1.0),
        (scene.cycles, "device", "CPU"),
        (scene.cycles, "samples", SAMPLES),
        (scene.cycles, "use_denoising", False),
        # Markers bound to cameras would switch the camera back when the frame is set and when rendering.
        *((marker, "camera", None) for marker in scene.timeline_markers if marker.camera is not None),
        (scene, "camera", camera),
    ]
    frame = scene.frame_current
    with _temporarily(settings), tempfile.TemporaryDirectory(prefix="regia-blockout-") as tmp:
        try:
            scene.frame_set(shot.frame_start)
            shaded = _render(scene, Path(tmp) / "shaded.png")
            normal_pass = [(scene.cycles, "samples", PASS_SAMPLES), (render, "film_transparent", True)]
            with _temporarily(normal_pass), _normals_override(list(scene.view_layers)):
                normals = _render(scene, Path(tmp) / "normals.png")
        finally:
            scene.frame_set(frame)
    return Blockout(render=shaded, outline=outline_drawing(edges(shaded, normals)))


def store(shot: bpy.types.PropertyGroup, blockout: Blockout) -> None:
    """Keep the renders on the shot as images, so the artist can see what guided it."""
    shot.blockout_image = _image(shot.blockout_image, f"{shot.name} blockout", blockout.render)
    shot.outline_image = _image(shot.outline_image, f"{shot.name} outline", blockout.outline)


def _image(image: bpy.types.Image | None, name: str, pixels: np.ndarray) -> bpy.types.Image:
    height, width = pixels.shape[:2]
    if image is None or size_of(image) != (width, height):
        image = new_image(name, width, height, (1, 1, 1, 1), alpha=True)
    write_rgba(image, pixels)
    image.pack()  # generated pixels live in the .blend
    return image


def _render(scene: bpy.types.Scene, path: Path) -> np.ndarray:
    bpy.ops.render.render()
    bpy.data.images["Render Result"].save_render(str(path), scene=scene)
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        return read_rgba(image)
    finally:
        bpy.data.images.remove(image)


@contextlib.contextmanager
def _normals_override(view_layers: list[bpy.types.ViewLayer]) -> Iterator[None]:
    """Every surface emits its normal (mapped to 0..1) for the time of the render."""
    material = bpy.data.materials.new(_NORMALS_MATERIAL)
    try:
        if material.node_tree is None:  # 4.2: a new material has no node tree until use_nodes is set
            material.use_nodes = True
        nodes, links = material.node_tree.nodes, material.node_tree.links
        nodes.clear()
        geometry = nodes.new("ShaderNodeNewGeometry")
        to_colour = nodes.new("ShaderNodeVectorMath")
        to_colour.operation = "MULTIPLY_ADD"
        to_colour.inputs[1].default_value = (0.5, 0.5, 0.5)
        to_colour.inputs[2].default_value = (0.5, 0.5, 0.5)
        emission = nodes.new("ShaderNodeEmission")
        output = nodes.new("ShaderNodeOutputMaterial")
        links.new(geometry.outputs["Normal"], to_colour.inputs[0])
        links.new(to_colour.outputs["Vector"], emission.inputs["Color"])
        links.new(emission.outputs["Emission"], output.inputs["Surface"])
        with _temporarily([(layer, "material_override", material) for layer in view_layers]):
            yield
    finally:
        bpy.data.materials.remove(material)


@contextlib.contextmanager
def _temporarily(settings: list[tuple[object, str, object]]) -> Iterator[None]:
    """Set attributes for the time of a block, then put every one back (in reverse order, with a second round for
    any that could not be restored before another was, e.g. a file format before its media type)."""
    saved: list[tuple[object, str, object]] = []
    try:
        for obj, attr, value in settings:
            saved.append((obj, attr, getattr(obj, attr)))
            setattr(obj, attr, value)
        yield
    finally:
        pending = list(reversed(saved))
        for _ in range(2):
            failed = []
            for obj, attr, value in pending:
                try:
                    setattr(obj, attr, value)
                except (TypeError, ValueError, AttributeError):
                    failed.append((obj, attr, value))
            pending = failed
        for _obj, attr, value in pending:
            print(f"Regia: could not restore {attr} = {value!r} after the blockout render")
