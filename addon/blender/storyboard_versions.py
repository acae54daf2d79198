"""A shot's versions: each generated image is saved as a PNG in the storyboard's folder and packed into the .blend,
added to the shot's history, and made the shot's current image, which its Sequencer strip shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy

from ..storyboard import shot_image_name
from .images import load_png
from .paths import file_stem, user_dir, write_file
from .storyboard_sequencer import place_shot


def shots_folder(scene: bpy.types.Scene) -> Path:
    """The storyboard's folder if set; else `<blend>.regia/<scene>/` beside a saved .blend; else Regia's own."""
    storyboard = scene.regia_storyboard
    if storyboard.folder.strip():
        path = Path(bpy.path.abspath(storyboard.folder))
    elif bpy.data.filepath:
        blend = Path(bpy.data.filepath)
        path = blend.parent / f"{blend.stem}.regia" / file_stem(scene.name)
    else:
        path = user_dir("storyboards") / file_stem(scene.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_version(
    scene: bpy.types.Scene,
    shot: bpy.types.PropertyGroup,
    png: bytes,
    job_id: str = "",
    seconds: float = 0.0,
    spec: dict[str, Any] | None = None,
) -> bpy.types.Image:
    """Save `png` as the shot's next version and make it current (its strip too)."""
    storyboard = scene.regia_storyboard
    number = shot.next_version
    shot.next_version = number + 1
    path = shots_folder(scene) / f"{file_stem(storyboard.name)}_{file_stem(shot.name)}_v{number:03d}.png"
    write_file(path, png)
    image = load_png(path, shot_image_name(storyboard.name, shot.name, number))
    image.pack()  # the shot's image lives in the .blend, whatever happens to the folder
    image["regia_storyboard"] = storyboard.name
    image["regia_shot"] = shot.uid
    if spec is not None:
        image["regia_spec"] = json.dumps(spec, sort_keys=True)
    version = shot.versions.add()
    version.image, version.job_id, version.seconds, version.path = image, job_id, seconds, str(path)
    version.seed = str(spec["seed"]) if spec is not None else ""
    version.shot_seed = shot.seed
    use_version(scene, shot, len(shot.versions) - 1)
    return image


def use_version(scene: bpy.types.Scene, shot: bpy.types.PropertyGroup, index: int) -> None:
    """Make a version the shot's current image, and put it on the shot's strip."""
    version = shot.versions[index]
    path = Path(version.path)
    if not path.is_file() and version.image is not None and version.image.packed_file is not None:
        path = shots_folder(scene) / Path(version.path).name  # the folder was cleared or moved: write it again
        write_file(path, bytes(version.image.packed_file.data))
        version.path = str(path)
    shot.active_version = index
    shot.image = version.image
    shot.seed = version.shot_seed  # the shot's settings make this version again (an export renders it as shown)
    place_shot(scene, scene.regia_storyboard, shot, str(path))
