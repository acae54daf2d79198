"""Export a storyboard: the storyboard file, regia_storyboard.json, with its style, blockout and guide images as
PNGs beside it, so that `python -m engine storyboard FILE --out DIR` renders it without Blender; each shot's
current image as a numbered PNG; and a contact sheet of every shot in order with its name and frames."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..contact_sheet import Panel, cell_size, contact_sheet
from ..png_codec import encode_png
from ..spec_builder import InputError
from ..storyboard import export_files
from .images import read_rgba
from .paths import file_stem, write_file
from .storyboard_inputs import prepare

# Not "storyboard.json": that is the report `python -m engine storyboard` writes into its output folder.
STORYBOARD_FILE = "regia_storyboard.json"
CONTACT_SHEET = "contact_sheet.png"
SHOTS_DIR = "shots"
_OUR_SHOT_FILE = re.compile(r"\d{3}_.*\.png")


@dataclass
class Exported:
    storyboard: Path
    contact_sheet: Path
    shots: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # shots with no image yet


def export(scene: bpy.types.Scene, folder: Path) -> Exported:
    """Write everything into `folder`. A shot that cannot be built stops the export before anything is written:
    a storyboard file without it would not be the storyboard."""
    storyboard = scene.regia_storyboard
    shots = list(storyboard.shots)
    if not shots:
        raise InputError("storyboard", "there are no shots to export", allowed="add shots first")
    prepared = prepare(scene, shots)
    if prepared.errors:
        raise InputError("export", "; ".join(prepared.errors.values()))
    data, files = export_files(prepared.storyboard, prepared.blobs)
    folder.mkdir(parents=True, exist_ok=True)
    for relative, png in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        write_file(folder / relative, png)
    write_file(folder / STORYBOARD_FILE, (json.dumps(data, indent=2) + "\n").encode())

    shots_dir = folder / SHOTS_DIR
    shots_dir.mkdir(exist_ok=True)
    for old in shots_dir.iterdir():  # a shot removed since the last export must not linger
        if _OUR_SHOT_FILE.fullmatch(old.name):
            old.unlink()
    exported = Exported(storyboard=folder / STORYBOARD_FILE, contact_sheet=folder / CONTACT_SHEET)
    panels = []
    for number, shot in enumerate(shots, start=1):
        pixels = read_rgba(shot.image) if shot.image is not None and shot.image.size[0] else None
        lines = [f"{number:02d} {shot.name}", f"frames {shot.frame_start}-{shot.frame_end}"]
        panels.append(Panel(pixels, [*lines, shot.description] if shot.description.strip() else lines))
        if pixels is None:
            exported.missing.append(shot.name)
            continue
        path = shots_dir / f"{number:03d}_{file_stem(shot.name)}.png"
        write_file(path, encode_png(pixels))
        exported.shots.append(path)
    sheet, _ = contact_sheet(panels, cell_size(storyboard.width, storyboard.height))
    write_file(exported.contact_sheet, encode_png(sheet))
    return exported
