"""A storyboard shot as a job: the seed rule and the expansion, on plain dicts (a storyboard file as JSON holds it).

The engine validates the file first (engine/storyboard_format.py), then expands each shot here; the add-on expands
the storyboard it built here too, so its per-shot jobs and `python -m engine storyboard` are one thing.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from . import SPEC_VERSION
from .limits import DEFAULT_PALETTE_WEIGHT, DEFAULT_PREVIEW_EVERY, DEFAULT_STYLE_WEIGHT

PROMPT_SLOT = "{prompt}"  # in a style prompt (a storyboard's or a preset's): the shot's or job's own text
DEFAULT_SUBJECT = "a scene"  # what "{prompt}" becomes when there is no text
# Text guide weights: the shot's own words lead, the style prompt colours them; negatives repel.
DESCRIPTION_WEIGHT, SHOT_NEGATIVE_WEIGHT = 1.0, -1.0
STYLE_PROMPT_WEIGHT, STYLE_NEGATIVE_WEIGHT = 0.5, -0.5
# Storyboard fields that pass to every shot's job unchanged, when the storyboard sets them.
RUN_FIELDS = ("generator", "optimizer", "preset", "losses", "models", "cutouts")


def derived_seed(seed: int, name: str) -> int:
    """The per_shot rule: the first 4 bytes (big-endian) of sha256("<seed>:<name>"), UTF-8. It depends on the
    name only, so reordering shots keeps their seeds, and it is the same in every process and on every machine."""
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def shot_seed(board: dict[str, Any], index: int) -> int:
    """The shot's own seed if set; else the storyboard's seed (rule "fixed") or one derived from it and the
    shot's name (rule "per_shot")."""
    shot = board["shots"][index]
    if shot.get("seed") is not None:
        return int(shot["seed"])
    seed = int(board.get("seed", 0))
    return derived_seed(seed, shot["name"]) if board.get("seed_rule", "fixed") == "per_shot" else seed


def shared_guides(board: dict[str, Any], index: int) -> list[tuple[str, dict[str, Any]]]:
    """(storyboard field it comes from, guide) for the guides every shot gets, in the order they stand in a shot's
    job: one style guide per style image, the palette, then, only with models.clip or the diffusion generator (whose
    prompts they are), the text (the shot's description and negative, the style prompt with "{prompt}" replaced,
    the style negative)."""
    style, shot = board.get("style") or {}, board["shots"][index]
    weight = style.get("weight", DEFAULT_STYLE_WEIGHT)
    guides: list[tuple[str, dict[str, Any]]] = [
        (f"style.images[{i}]", {"kind": "style", "image": image, "weight": weight})
        for i, image in enumerate(style.get("images") or [])
    ]
    if style.get("palette"):
        palette = {"kind": "palette", "colors": list(style["palette"]),
                   "weight": style.get("palette_weight", DEFAULT_PALETTE_WEIGHT)}  # fmt: skip
        guides.append(("style.palette", palette))
    takes_prompts = (board.get("generator") or {}).get("kind") == "diffusion"
    if not ((board.get("models") or {}).get("clip") or takes_prompts):
        return guides  # text needs CLIP or a generator that takes prompts; without either the rest of the style
    description = shot.get("description", "")
    subject = description.strip() or DEFAULT_SUBJECT
    texts = (
        (f"shots[{index}].description", description, DESCRIPTION_WEIGHT),
        (f"shots[{index}].negative", shot.get("negative", ""), SHOT_NEGATIVE_WEIGHT),
        ("style.prompt", style.get("prompt", "").replace(PROMPT_SLOT, subject), STYLE_PROMPT_WEIGHT),
        ("style.negative", style.get("negative", ""), STYLE_NEGATIVE_WEIGHT),
    )
    guides += [(path, {"kind": "text", "prompt": text, "weight": w}) for path, text, w in texts if text.strip()]
    return guides


def shot_spec(board: dict[str, Any], index: int) -> dict[str, Any]:
    """The job spec (a dict) for shot `index`: the storyboard's canvas, steps, preview interval and run fields
    (generator, optimiser, preset, losses, models, cutouts: those it sets); the shot's seed (shot_seed); top-level
    guides: the shared ones (shared_guides), then the shot's own; the shot's regions and init."""
    shot = board["shots"][index]
    spec: dict[str, Any] = {
        "version": SPEC_VERSION,
        "width": board["width"],
        "height": board["height"],
        "seed": shot_seed(board, index),
        "steps": board["steps"],
        "preview_every": board.get("preview_every", DEFAULT_PREVIEW_EVERY),
    }
    for key in RUN_FIELDS:
        if board.get(key) is not None:
            spec[key] = copy.deepcopy(board[key])
    spec["guides"] = [guide for _, guide in shared_guides(board, index)] + copy.deepcopy(shot.get("guides") or [])
    spec["regions"] = copy.deepcopy(shot.get("regions") or [])
    if shot.get("init"):
        spec["init"] = copy.deepcopy(shot["init"])
    return spec


def storyboard_field(board: dict[str, Any], index: int, path: str) -> str:
    """A field path in shot `index`'s job, as the storyboard field it came from (for errors)."""
    shot = board["shots"][index]
    found = re.match(r"^guides\[(\d+)\](.*)$", path)
    if found:
        shared = shared_guides(board, index)
        g_index, rest = int(found.group(1)), found.group(2)
        if g_index < len(shared):
            return shared[g_index][0]
        if g_index < len(shared) + len(shot.get("guides") or []):
            return f"shots[{index}].guides[{g_index - len(shared)}]{rest}"
        return "preset"  # guides the preset appended (its palette, its style prompt)
    if path.startswith(("regions", "init")):
        return f"shots[{index}].{path}"
    return path  # canvas, run, preset and model fields are the storyboard's own
