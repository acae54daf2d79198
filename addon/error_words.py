"""Engine errors in the artist's words: "Region 'Sky', Style guide 2" instead of `regions[0].guides[1].image`, and
"the image" instead of a `blob:<sha256>` reference. Pure logic (no bpy), given the spec the add-on sent."""

from __future__ import annotations

import re
from typing import Any

from ..regia_contract.kinds import GUIDE_KINDS

BLOB_RE = re.compile(r"'?blob:[0-9a-f]{64}'?")
FIELD_AT_START = re.compile(r"^(?P<field>[a-z_]+(?:\[\d+\]|\.[a-z_]+)*): ")
REGION_RE = re.compile(r"regions\[(\d+)\](.*)")
GUIDE_RE = re.compile(r"\.?guides\[(\d+)\](.*)")
SETTINGS = {
    "init": "Target image",
    "width": "Size",
    "height": "Size",
    "models": "CLIP Model",
    "cutouts": "CLIP cutouts",
    "optimizer": "Optimizer",
    "generator": "Generator",
    "losses": "Losses",
    "preset": "Preset",
    "steps": "Steps",
    "seed": "Seed",
    "preview_every": "Preview Every",
}
# Fields named more closely than by their first part (the diffusion generator's settings and its model).
SETTINGS_BY_PATH = {
    "models.clip": "CLIP Model",
    "models.diffusion": "Diffusion Model",
    "generator.sampler": "Sampler",
    "generator.cfg": "CFG Scale",
    "generator.strength": "Strength",
    "generator.guidance_every": "Guidance Every",
    "generator.guidance_strength": "Guidance Strength",
}


def _guide(guides: list[Any], index: int, where: str) -> str:
    """The guide as the panel names it ("Smoothness guide 2"): the contract's label, else the kind as written."""
    kind = guides[index].get("kind", "") if index < len(guides) and isinstance(guides[index], dict) else ""
    info = GUIDE_KINDS.get(kind) if isinstance(kind, str) else None
    label = info.label if info is not None else str(kind).replace("_", " ").title()
    return f"{label or 'Guide'} guide {index + 1}{where}"


def field_label(field: str, spec: dict[str, Any] | None) -> str | None:
    """What the artist calls the thing at `field`, or None for errors about the request itself ("(body)")."""
    if not field or field.startswith("(") or field[0].isupper():  # (server), (body), Content-Type, Origin
        return None
    spec = spec or {}
    region = REGION_RE.fullmatch(field)
    if region:
        regions = spec.get("regions") or []
        index, rest = int(region.group(1)), region.group(2)
        name = regions[index].get("name", f"{index + 1}") if index < len(regions) else f"{index + 1}"
        label = f"Region '{name}'"
        guide = GUIDE_RE.match(rest)
        if guide:
            guides = regions[index].get("guides") or [] if index < len(regions) else []
            return f"{label}, {_guide(guides, int(guide.group(1)), '')}"
        words = {".mask": "mask", ".guidance_scale": "guidance scale", ".init_strength": "strength"}
        return f"{label} {words[rest]}" if rest in words else label
    guide = GUIDE_RE.fullmatch(field)
    if guide:
        return _guide(spec.get("guides") or [], int(guide.group(1)), " for all regions")
    for path, label in SETTINGS_BY_PATH.items():
        if field == path or field.startswith(f"{path}."):
            return label
    return SETTINGS.get(re.split(r"[.\[]", field)[0], field)


def without_blobs(text: str) -> str:
    return BLOB_RE.sub("the image", text)


def describe_error(error: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    """One engine error {field, message, value, allowed} as one line the artist can act on."""
    label = field_label(str(error.get("field") or ""), spec)
    text = without_blobs(str(error.get("message") or "error"))
    details = [
        f"{key}: {without_blobs(str(error[key]))}"
        for key in ("value", "allowed")
        if error.get(key) not in (None, "") and not BLOB_RE.fullmatch(str(error[key]))
    ]
    line = f"{label}: {text}" if label else text[:1].upper() + text[1:]
    return f"{line} ({'; '.join(details)})" if details else line


def in_artist_words(text: str, spec: dict[str, Any] | None = None) -> str:
    """A failed job's `error` ("regions[0].mask: the mask is empty ...") with its field named as the artist would."""
    match = FIELD_AT_START.match(text)
    if not match:
        return without_blobs(text)
    label = field_label(match.group("field"), spec)
    rest = without_blobs(text[match.end() :])
    return f"{label}: {rest}" if label else rest
