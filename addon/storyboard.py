"""Storyboards, the pure side: shots from timeline markers or a text block, a seed per shot, the storyboard file,
and each shot's job spec.

A storyboard is one style shared by every shot of a scene. Its file (below) is what `python -m engine storyboard
FILE --out DIR` renders without Blender. A shot becomes a job by the contract's rules (regia_contract/storyboard.py:
the seed rule and the expansion), which the engine uses too, so the add-on's jobs and the engine's are one thing.

    {"version": 1, "name", "width", "height", "steps", "generator", "preset"?, "models"?, "seed",
     "seed_rule": "fixed" | "per_shot", "preview_every",
     "style": {"images": [...], "weight", "palette": [...], "palette_weight", "prompt", "negative"},
     "shots": [{"name", "frame_start", "frame_end", "description", "negative", "seed": null | int, "init": null,
                "guides": [...], "regions": [...]}]}

Image references are `blob:<sha256>` while the add-on builds jobs, and PNG paths relative to the file once
exported (export_files).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..regia_contract import STORYBOARD_VERSION
from ..regia_contract.kinds import GENERATOR_KINDS, SEED_RULES
from ..regia_contract.limits import (
    FRAME_LIMIT,
    MAX_NAME,
    MAX_SEED,
    MAX_SHOT_GUIDES,
    MAX_SHOT_TEXT,
    MAX_SIDE,
    MAX_STYLE_IMAGES,
    MAX_STYLE_TEXT,
    MIN_SIDE,
)
from .diffusion import KIND as DIFFUSION
from .diffusion import DiffusionInput, generator_spec, round_side
from .naming import MAX_ID_NAME_BYTES
from .spec_builder import (
    Blobs,
    GuideInput,
    InputError,
    RegionInput,
    check_diffusion,
    check_diffusion_guides,
    guide_spec,
    parse_palette,
    region_spec,
    unique_name,
)

DEFAULT_SHOT_LENGTH = 24


# ---- shots from markers and from text --------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    name: str
    frame: int
    camera: str | None  # the name of the camera the marker binds, None when it binds none


@dataclass(frozen=True)
class ShotRange:
    name: str
    frame_start: int
    frame_end: int
    camera: str | None = None
    description: str | None = None  # from a text line; None leaves a shot's description as it is


def shots_from_markers(markers: list[Marker], scene_end: int) -> tuple[list[ShotRange], list[str]]:
    """One shot per marker bound to a camera, from its frame to the frame before the next camera-bound marker
    (where Blender switches camera), the last to the scene's end. Markers that bind no camera switch nothing, so
    they are skipped; every skipped marker is named in the notes."""
    notes: list[str] = []
    bound: list[Marker] = []
    for marker in sorted(markers, key=lambda m: m.frame):  # stable: Blender's order among markers on one frame
        if marker.camera is None:
            notes.append(f"marker '{marker.name}' (frame {marker.frame}) has no camera: skipped")
        elif bound and bound[-1].frame == marker.frame:
            notes.append(f"marker '{marker.name}' shares frame {marker.frame} with '{bound[-1].name}': skipped")
        else:
            bound.append(marker)
    shots: list[ShotRange] = []
    taken: set[str] = set()
    for index, marker in enumerate(bound):
        end = bound[index + 1].frame - 1 if index + 1 < len(bound) else scene_end
        if end < marker.frame:
            notes.append(
                f"marker '{marker.name}' (frame {marker.frame}) is after the scene's end ({scene_end}): skipped"
            )
            continue
        name = unique_name(marker.name.strip() or str(marker.camera), taken)
        shots.append(ShotRange(name, marker.frame, end, marker.camera))
    return shots, notes


# `Name: description`, or `Name [start-end]: description` to give the frames too.
_SHOT_LINE = re.compile(r"(?P<name>[^:\[\]]*?)\s*(?:\[\s*(?P<start>-?\d+)\s*-\s*(?P<end>-?\d+)\s*\])?\s*:(?P<text>.*)")
SHOT_LINE_FORMAT = "'Shot name: description' or 'Shot name [start-end]: description'"


@dataclass(frozen=True)
class ShotLine:
    line: int  # 1-based, as a text editor numbers lines
    name: str
    description: str
    frames: tuple[int, int] | None = None


def parse_shot_text(text: str) -> list[ShotLine]:
    """Lines `Shot name: description` (optionally `Shot name [1-24]: ...`). Blank lines and lines starting with
    '#' are skipped; anything else that does not parse is an InputError naming its line."""
    shots: list[ShotLine] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        match = _SHOT_LINE.fullmatch(line)
        if match is None:
            raise InputError(where, "not a shot", value=line, allowed=SHOT_LINE_FORMAT)
        name, description = match["name"].strip(), match["text"].strip()
        if not name:
            raise InputError(where, "the shot has no name before the ':'", value=line, allowed=SHOT_LINE_FORMAT)
        if len(name) > MAX_NAME:
            raise InputError(where, f"the shot name is longer than {MAX_NAME} characters", value=name)
        if not description:
            raise InputError(where, f"shot '{name}' has no description after the ':'", value=line)
        if name in first_line:
            raise InputError(where, f"shot '{name}' is already on line {first_line[name]}", value=line)
        frames = None
        if match["start"] is not None:
            frames = (int(match["start"]), int(match["end"]))
            if frames[1] < frames[0]:
                raise InputError(where, "the shot ends before it starts", value=f"[{frames[0]}-{frames[1]}]")
        first_line[name] = number
        shots.append(ShotLine(number, name, description, frames))
    return shots


def shots_from_text(
    lines: list[ShotLine], existing: dict[str, tuple[int, int]], first_frame: int, length: int = DEFAULT_SHOT_LENGTH
) -> list[ShotRange]:
    """Frame ranges for parsed lines: the line's own, else the range of the existing shot of that name, else the
    `length` frames after the previous shot in the list (the first one from `first_frame`)."""
    shots: list[ShotRange] = []
    for line in lines:
        if line.frames is not None:
            start, end = line.frames
        elif line.name in existing:
            start, end = existing[line.name]
        else:
            start = shots[-1].frame_end + 1 if shots else first_frame
            end = start + max(1, length) - 1
        shots.append(ShotRange(line.name, start, end, description=line.description))
    return shots


# ---- the storyboard file and each shot's spec ------------------------------------------------------------------


@dataclass
class StyleInput:
    """Everything the storyboard shares: canvas, run settings and the style every shot takes on."""

    name: str
    width: int
    height: int
    steps: int = 150
    generator: str = "pixels"
    preset: str = ""
    images: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (name, top-down (h, w, 4) float pixels)
    weight: float = 1.0
    palette: str = ""  # hex colours separated by spaces or commas; empty for none
    palette_weight: float = 0.3
    prompt: str = ""  # may hold "{prompt}", replaced by each shot's description
    negative: str = ""
    clip_model: str = ""
    clip_weights: str = ""
    seed: int = 0
    seed_rule: str = "fixed"
    preview_every: int = 10
    diffusion: DiffusionInput = field(default_factory=DiffusionInput)  # counts with generator "diffusion"


def storyboard_canvas(style: StyleInput) -> tuple[int, int]:
    """The shots' canvas: the storyboard's size, for the diffusion generator rounded to multiples of 8 a side (shot
    images drawn at the storyboard's size are scaled to it)."""
    if style.generator == DIFFUSION:
        return round_side(style.width), round_side(style.height)
    return style.width, style.height


@dataclass
class ShotInput:
    name: str
    frame_start: int
    frame_end: int
    description: str = ""
    negative: str = ""
    seed: int | None = None  # None: the storyboard's rule
    guides: list[GuideInput] = field(default_factory=list)  # blockout guides come in here, canvas-sized
    regions: list[RegionInput] = field(default_factory=list)  # masks at the canvas size


def storyboard_head(style: StyleInput, blobs: Blobs) -> dict[str, Any]:
    """The storyboard file without its shots; style images become blobs."""
    if style.generator not in GENERATOR_KINDS:
        raise InputError("storyboard generator", "unknown choice", style.generator, ", ".join(GENERATOR_KINDS))
    width, height = storyboard_canvas(style)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise InputError(
            "storyboard size", "not a canvas the engine accepts", f"{width}x{height}",
            f"{MIN_SIDE} to {MAX_SIDE} pixels on each side",
        )  # fmt: skip
    if style.generator == DIFFUSION:
        check_diffusion(style.diffusion)
    if style.seed_rule not in SEED_RULES:
        raise InputError("storyboard seed rule", "unknown choice", style.seed_rule, ", ".join(SEED_RULES))
    if len(style.images) > MAX_STYLE_IMAGES:
        raise InputError("storyboard style images", "too many", len(style.images), f"at most {MAX_STYLE_IMAGES}")
    for label, text in (("prompt", style.prompt), ("negative", style.negative)):
        if len(text.strip()) > MAX_STYLE_TEXT:
            raise InputError(f"storyboard style {label}", f"longer than {MAX_STYLE_TEXT} characters", len(text))
    canvas = (width, height)
    images = []
    for index, (name, pixels) in enumerate(style.images):
        guide = GuideInput(kind="STYLE", image=pixels, image_name=name)
        images.append(guide_spec(guide, f"storyboard style image {index + 1} '{name}'", canvas, canvas, blobs)["image"])
    head: dict[str, Any] = {
        "version": STORYBOARD_VERSION,
        "name": style.name.strip()[:MAX_NAME] or "storyboard",
        "width": int(width),
        "height": int(height),
        "steps": int(style.steps),
        "generator": generator_spec(style.generator, style.diffusion),
        "style": {
            "images": images,
            "weight": float(style.weight),
            "palette": parse_palette(style.palette, "storyboard palette") if style.palette.strip() else [],
            "palette_weight": float(style.palette_weight),
            "prompt": style.prompt.strip(),
            "negative": style.negative.strip(),
        },
        "seed": int(style.seed),
        "seed_rule": style.seed_rule,
        "preview_every": int(style.preview_every),
    }
    if style.preset:
        head["preset"] = style.preset
    if style.clip_model.strip():
        if not style.clip_weights.strip():  # never a silent fallback to random weights
            raise InputError(
                "storyboard CLIP weights", f"no weights are set for the CLIP model {style.clip_model}",
                allowed="an open_clip pretrained tag, a checkpoint file, or 'random' (untrained, for tests)",
            )  # fmt: skip
        head["models"] = {"clip": {"name": style.clip_model.strip(), "weights": style.clip_weights.strip()}}
    if style.generator == DIFFUSION:
        head.setdefault("models", {})["diffusion"] = {"weights": style.diffusion.weights.strip()}
    return head


def shot_entry(
    shot: ShotInput,
    canvas: tuple[int, int],
    blobs: Blobs,
    source: tuple[int, int] | None = None,
    head: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One shot of the storyboard file. Its guides and region masks are checked against the canvas here, so a
    mistake fails this shot alone, with a message naming it. `source`: the size its canvas-sized images and masks
    were made at (the storyboard's, when the canvas is rounded for the diffusion generator); `head`: the storyboard
    (storyboard_head), for what its generator needs of a shot's guides."""
    where = f"shot '{shot.name}'"
    source = source or canvas
    if not shot.name.strip():
        raise InputError("shot name", "a shot needs a name")
    if shot.frame_end < shot.frame_start:
        raise InputError(f"{where} frames", "the shot ends before it starts", f"{shot.frame_start}-{shot.frame_end}")
    if max(abs(shot.frame_start), abs(shot.frame_end)) > FRAME_LIMIT:
        raise InputError(f"{where} frames", "outside Blender's frame range", f"{shot.frame_start}-{shot.frame_end}")
    for label, text in (("description", shot.description), ("negative", shot.negative)):
        if len(text.strip()) > MAX_SHOT_TEXT:
            raise InputError(f"{where} {label}", f"longer than {MAX_SHOT_TEXT} characters", len(text.strip()))
    if len(shot.guides) > MAX_SHOT_GUIDES:
        raise InputError(f"{where} guides", "too many", len(shot.guides), f"at most {MAX_SHOT_GUIDES}")
    if shot.seed is not None and not 0 <= shot.seed <= MAX_SEED:
        raise InputError(f"{where} seed", "out of range", shot.seed, f"0 to {MAX_SEED}")
    if head is not None and head["generator"]["kind"] == DIFFUSION:
        clip = ((head.get("models") or {}).get("clip") or {}).get("name", "")
        placed = [(f"{where} guides", g) for g in shot.guides]
        placed += [(f"{where} region '{r.name}' guides", g) for r in shot.regions for g in r.guides]
        check_diffusion_guides(clip, placed)
    guides = [guide_spec(g, f"{where} guides[{i}]", source, canvas, blobs) for i, g in enumerate(shot.guides)]
    regions = []
    names: set[str] = set()
    for region in shot.regions:
        if region.mode != "edit":  # shots start from no image, and keep/embolden work on a starting image
            raise InputError(f"{where} region '{region.name}' mode", "a shot's regions can only be edit regions",
                             region.mode, "edit")  # fmt: skip
        try:
            regions.append(region_spec(region, unique_name(region.name, names), source, canvas, False, blobs))
        except InputError as error:  # region_spec names the region; the artist needs the shot too
            raise InputError(f"{where} {error.where}", str(error)[len(error.where) + 2 :]) from None
    return {
        "name": shot.name.strip()[:MAX_NAME],
        "frame_start": int(shot.frame_start),
        "frame_end": int(shot.frame_end),
        "description": shot.description.strip(),
        "negative": shot.negative.strip(),
        "seed": None if shot.seed is None else int(shot.seed),
        "init": None,
        "guides": guides,
        "regions": regions,
    }


# ---- image references: which blobs a spec needs, and files for an exported storyboard --------------------------


def _image_slots(shot_or_spec: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(holder, key) of every image reference in a shot entry or a spec: init, guide images, region masks and
    their guides' images. Text never counts, even when it starts with 'blob:'."""
    slots: list[tuple[dict[str, Any], str]] = []
    init = shot_or_spec.get("init")
    if isinstance(init, dict):
        slots.append((init, "image"))
    elif init:
        slots.append((shot_or_spec, "init"))
    guides = list(shot_or_spec.get("guides", []))
    for region in shot_or_spec.get("regions", []):
        slots.append((region, "mask"))
        guides += region.get("guides", [])
    slots += [(guide, "image") for guide in guides if "image" in guide]
    return slots


def spec_blobs(spec: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, bytes]:
    """The blobs one shot's spec refers to: each job uploads its own images, not every shot's."""
    shas = {holder[key].removeprefix("blob:") for holder, key in _image_slots(spec)}
    return {sha: data for sha, data in blobs.items() if sha in shas}


def export_files(
    storyboard: dict[str, Any], blobs: dict[str, bytes], folder: str = "images"
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The storyboard with every `blob:<sha256>` replaced by a PNG path relative to the file, and the bytes of
    those files (relative path -> PNG): the same pixels are one file, however many shots use them."""
    out = copy.deepcopy(storyboard)
    files: dict[str, bytes] = {}

    def path_of(ref: str) -> str:
        if not ref.startswith("blob:"):
            return ref
        sha = ref.removeprefix("blob:")
        if sha not in blobs:
            raise KeyError(f"the storyboard refers to a blob it does not hold: {sha}")
        path = f"{folder}/{sha[:16]}.png"
        files[path] = blobs[sha]
        return path

    style = out.get("style") or {}
    style["images"] = [path_of(ref) for ref in style.get("images", [])]
    for shot in out.get("shots", []):
        for holder, key in _image_slots(shot):
            holder[key] = path_of(holder[key])
    return out, files


def shot_image_name(storyboard: str, shot: str, version: int) -> str:
    """`<storyboard> <shot> v001`, trimmed (on a character boundary) to fit a Blender ID name."""
    suffix = f" v{version:03d}"
    base = f"{storyboard} {shot}".encode()[: MAX_ID_NAME_BYTES - len(suffix)]
    return base.decode(errors="ignore") + suffix
