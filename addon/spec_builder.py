"""Build an engine job spec, and the PNG blobs it references, from what the artist set up in Blender.

Pure: the bpy side copies properties and pixels into the dataclasses below (see addon/blender/inputs.py), and this
module turns them into a spec dict with `blob:<sha256>` references plus the bytes to upload. Every user mistake
becomes an InputError naming where it is (the region and guide), the value and what is allowed, before anything
reaches the engine, which validates the spec again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..regia_contract import SPEC_VERSION
from ..regia_contract.kinds import GENERATOR_KINDS, OPTIMIZER_KINDS, REGION_MODES, SCHEDULES, SYMMETRY_AXES
from ..regia_contract.limits import MAX_NAME, MAX_SIDE, MIN_SIDE
from .diffusion import KIND as DIFFUSION
from .diffusion import DiffusionInput, diffusion_problems, generator_spec, round_side
from .guide_kinds import KINDS, MAX_REFERENCE_SIDE, AddonGuideKind
from .pixels import resize, rgba, to_uint8
from .png_codec import encode_png, sha256_hex
from .region_maps import is_empty

HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6})")


class InputError(ValueError):
    """A setting the engine could not run, with where it is and what would be allowed."""

    def __init__(self, where: str, message: str, value: Any = None, allowed: str | None = None) -> None:
        self.where, self.value, self.allowed = where, value, allowed
        text = f"{where}: {message}"
        if value is not None:
            text += f" (got {value!r})"
        if allowed:
            text += f"; allowed: {allowed}"
        super().__init__(text)


@dataclass
class GuideInput:
    kind: str
    weight: float = 1.0
    text: str = ""
    image: np.ndarray | None = None  # top-down (h, w, 4) float display values
    image_name: str = ""
    colors: str = ""  # palette: hex colours separated by spaces or commas
    axis: str = "vertical"  # symmetry: one of the contract's SYMMETRY_AXES


@dataclass
class RegionInput:
    name: str
    mask: np.ndarray  # top-down (h, w) float in [0, 1], at the target's size
    mode: str = "edit"
    feather: float = 0.0
    strength: float = 1.0
    guides: list[GuideInput] = field(default_factory=list)
    guidance_scale: float | None = None  # the diffusion generator's CFG scale here; None: the generator's
    init_strength: float | None = None  # the diffusion generator's strength here (with the target); None: its own


@dataclass
class JobInput:
    target_name: str
    target: np.ndarray  # top-down (h, w, 4) float display values
    use_init: bool = True
    scale: float = 1.0  # canvas = target size x scale
    regions: list[RegionInput] = field(default_factory=list)
    guides: list[GuideInput] = field(default_factory=list)
    seed: int = 0
    steps: int = 200
    generator: str = "pixels"
    optimizer: str = "adam"
    lr: float = 0.05
    schedule: str = "cosine"
    preset: str = ""
    tv: float = 0.0
    saturation: float = 0.0
    symmetry: float = 0.0
    clip_model: str = ""
    clip_weights: str = ""
    preview_every: int = 10
    tileable: bool = False  # the canvas is a torus: a texture that repeats without a seam
    diffusion: DiffusionInput = field(default_factory=DiffusionInput)  # counts with generator "diffusion"


@dataclass
class BuiltJob:
    spec: dict[str, Any]
    blobs: dict[str, bytes]  # sha256 -> PNG bytes
    width: int
    height: int


class Blobs:
    """The PNG blobs a spec refers to as `blob:<sha256>`; the same pixels are stored once."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, image: np.ndarray) -> str:
        data = encode_png(to_uint8(image))
        sha = sha256_hex(data)
        self.blobs[sha] = data
        return f"blob:{sha}"


def canvas_size(width: int, height: int, scale: float, generator: str = "pixels") -> tuple[int, int]:
    """The generated image's size: the target's, scaled (for the diffusion generator to the nearest multiple of 8 a
    side, as its model needs), and kept within what the engine accepts."""
    if generator == DIFFUSION:
        w, h = round_side(width * scale), round_side(height * scale)
    else:
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if min(w, h) < MIN_SIDE or max(w, h) > MAX_SIDE:
        raise InputError(
            "scale",
            f"the canvas would be {w}x{h} pixels",
            value=f"{scale:g} of {width}x{height}",
            allowed=f"a canvas between {MIN_SIDE} and {MAX_SIDE} pixels on each side",
        )
    return w, h


def build_job(job: JobInput) -> BuiltJob:
    th, tw = job.target.shape[:2]
    _check_choice("generator", job.generator, GENERATOR_KINDS)
    width, height = canvas_size(tw, th, job.scale, job.generator)
    blobs = Blobs()
    diffusion = job.generator == DIFFUSION
    if diffusion:
        check_diffusion(job.diffusion)
        check_diffusion_guides(job.clip_model, _guides_by_place(job))
    else:
        _check_choice("optimizer", job.optimizer, OPTIMIZER_KINDS)
        _check_choice("schedule", job.schedule, SCHEDULES)

    spec: dict[str, Any] = {
        "version": SPEC_VERSION,
        "width": width,
        "height": height,
        "seed": int(job.seed),
        "steps": int(job.steps),
        "generator": generator_spec(job.generator, job.diffusion),
    }
    if not diffusion:  # a sampler has no optimiser
        spec["optimizer"] = {"kind": job.optimizer, "lr": float(job.lr), "schedule": job.schedule}
    spec |= {
        "losses": {"tv": float(job.tv), "saturation": float(job.saturation), "symmetry": float(job.symmetry)},
        "preview_every": int(job.preview_every),
        "guides": [guide_spec(g, f"guides[{i}]", (tw, th), (width, height), blobs) for i, g in enumerate(job.guides)],
    }
    if job.preset:
        spec["preset"] = job.preset
    if job.tileable:  # only when asked: a spec without it is the same bytes as before
        spec["tileable"] = True
    if job.use_init:
        spec["init"] = {"image": blobs.add(resize(rgba(job.target)[..., :3], width, height))}

    regions = job.regions or [_whole_canvas(th, tw)]
    names: set[str] = set()
    spec["regions"] = [
        region_spec(region, unique_name(region.name, names), (tw, th), (width, height), job.use_init, blobs)
        for region in regions
    ]
    if job.clip_model:
        if not job.clip_weights:  # never a silent fallback to random weights
            raise InputError(
                "CLIP weights",
                f"no weights are set for the CLIP model {job.clip_model}",
                allowed="an open_clip pretrained tag (e.g. laion2b_s34b_b79k for ViT-B-32), a checkpoint file, "
                "or 'random' (untrained, for tests)",
            )
        spec["models"] = {"clip": {"name": job.clip_model, "weights": job.clip_weights}}
    if diffusion:
        spec.setdefault("models", {})["diffusion"] = {"weights": job.diffusion.weights.strip()}
    return BuiltJob(spec=spec, blobs=blobs.blobs, width=width, height=height)


def _guides_by_place(job: JobInput) -> list[tuple[str, GuideInput]]:
    """(where, guide) for every guide the job sends: the guides for all regions, then each region's."""
    return [("Guides for All Regions", g) for g in job.guides] + [
        (f"region '{r.name}' guides", g) for r in job.regions if r.mode != "keep" for g in r.guides
    ]


def check_diffusion(diffusion: DiffusionInput) -> None:
    """What the diffusion generator cannot run, before anything reaches the engine: no model (never a silent
    fallback) and settings out of range."""
    if not diffusion.weights.strip():
        raise InputError(
            "Diffusion Model",
            "the Diffusion generator needs a model, and none is chosen",
            allowed="a model of the Diffusion Models list in Regia's preferences (add a diffusers folder or a "
            ".safetensors or .ckpt file there), chosen in Settings",
        )
    for where, message, value, allowed in diffusion_problems(diffusion):
        raise InputError(where, message, value, allowed)


def check_diffusion_guides(clip_model: str, guides: list[tuple[str, GuideInput]]) -> None:
    """With the diffusion generator text guides are prompts, but guides that need CLIP otherwise (Inspiration) still
    need a CLIP model. `guides` are (where, guide) pairs."""
    if clip_model.strip():
        return
    for where, guide in guides:
        kind = KINDS.get(guide.kind)
        if kind is not None and kind.needs_clip and kind.spec_kind != "text":
            raise InputError(
                f"{where} ({kind.label.lower()})",
                f"{kind.label} guides need a CLIP model, also with the Diffusion generator (its text guides are "
                "prompts and need none)",
                allowed="set CLIP Model and CLIP Weights in Settings, or remove the guide",
            )


def _whole_canvas(height: int, width: int) -> RegionInput:
    """No regions drawn: the whole image is one edit region, so global guides repaint all of it."""
    return RegionInput(name="image", mask=np.ones((height, width), dtype=np.float32))


def unique_name(name: str, taken: set[str]) -> str:
    """Blender lets two list items share a name; the spec does not, so repeats get Blender-style suffixes."""
    base = (name.strip() or "region")[:MAX_NAME]
    candidate, n = base, 0
    while candidate in taken:
        n += 1
        candidate = f"{base[: MAX_NAME - 4]}.{n:03d}"
    taken.add(candidate)
    return candidate


def region_spec(
    region: RegionInput,
    name: str,
    target_size: tuple[int, int],
    canvas: tuple[int, int],
    use_init: bool,
    blobs: Blobs,
) -> dict[str, Any]:
    where = f"region '{region.name}'"
    _check_choice(f"{where} mode", region.mode, REGION_MODES)
    mh, mw = region.mask.shape[:2]
    if (mw, mh) != target_size:
        raise InputError(
            f"{where} mask",
            "the mask is not the target image's size",
            value=f"{mw}x{mh}",
            allowed=f"{target_size[0]}x{target_size[1]}, the target's size",
        )
    mask = resize(np.clip(region.mask, 0.0, 1.0), *canvas)
    if is_empty(mask):
        raise InputError(f"{where} mask", "the mask is empty: draw or paint the region, or remove it")
    if region.mode != "edit" and not use_init:
        raise InputError(
            f"{where} mode",
            f"{region.mode} needs the target image as the starting point",
            value=region.mode,
            allowed="edit, or turn on 'Start from target'",
        )
    out: dict[str, Any] = {
        "name": name,
        "mask": blobs.add(mask),
        "mode": region.mode,
        "feather": float(region.feather),
    }
    if region.mode == "embolden":
        out["strength"] = float(region.strength)
    if region.guidance_scale is not None and region.mode != "keep":  # set only with the diffusion generator
        out["guidance_scale"] = float(region.guidance_scale)
    if region.init_strength is not None and region.mode != "keep" and use_init:  # how far from the target, here
        out["init_strength"] = float(region.init_strength)
    if region.mode != "keep":  # a keep region's guides stay in the panel but do nothing, as the engine requires
        out["guides"] = [
            guide_spec(g, f"{where} guides[{i}]", target_size, canvas, blobs) for i, g in enumerate(region.guides)
        ]
    return out


def guide_spec(
    guide: GuideInput, where: str, target_size: tuple[int, int], canvas: tuple[int, int], blobs: Blobs
) -> dict[str, Any]:
    """The guide as spec JSON, from its row in guide_kinds.KINDS: its spec kind, a value per field it has (prompt,
    image, colours, axis) and its signed weight."""
    kind = KINDS.get(guide.kind)
    if kind is None:
        raise InputError(f"{where} kind", "unknown choice", value=guide.kind, allowed=", ".join(KINDS))
    where = f"{where} ({kind.label.lower()})"
    out: dict[str, Any] = {"kind": kind.spec_kind}
    for name in kind.fields:
        key, value = _FIELD_SPECS[name](guide, kind, where, target_size, canvas, blobs)
        out[key] = value
    out["weight"] = kind.weight(float(guide.weight))
    return out


def _prompt(guide: GuideInput, kind: AddonGuideKind, where: str, *_: Any) -> tuple[str, str]:
    prompt = guide.text.strip()
    if not prompt:
        raise InputError(where, "the text is empty", allowed="a prompt, or remove the guide")
    return "prompt", prompt


def _colors(guide: GuideInput, kind: AddonGuideKind, where: str, *_: Any) -> tuple[str, list[str]]:
    return "colors", parse_palette(guide.colors, where)


def _axis(guide: GuideInput, kind: AddonGuideKind, where: str, *_: Any) -> tuple[str, str]:
    _check_choice(f"{where} axis", guide.axis, SYMMETRY_AXES)
    return "axis", guide.axis


def _image(
    guide: GuideInput,
    kind: AddonGuideKind,
    where: str,
    target_size: tuple[int, int],
    canvas: tuple[int, int],
    blobs: Blobs,
) -> tuple[str, str]:
    """Canvas images (drawn over the target) must be the target's size and are scaled with the canvas; references
    are sent at the canvas's size (content) or at most MAX_REFERENCE_SIDE."""
    if guide.image is None:
        raise InputError(where, "no image is set", allowed="pick an image for the guide, or remove it")
    image = rgba(guide.image)
    ih, iw = image.shape[:2]
    if kind.image == "canvas":
        if (iw, ih) != target_size:
            raise InputError(
                where,
                f"image '{guide.image_name}' is not the target image's size",
                value=f"{iw}x{ih}",
                allowed=f"{target_size[0]}x{target_size[1]}, the target's size",
            )
        image = resize(image, *canvas)
    elif kind.reference_at_canvas:
        image = resize(image, *canvas)[..., :3]
    else:
        image = _shrink(image, MAX_REFERENCE_SIDE)[..., :3]
    return "image", blobs.add(image)


# A guide's properties (guide_kinds.AddonGuideKind.fields) and how each becomes a spec key and value.
_FIELD_SPECS = {"text": _prompt, "image": _image, "colors": _colors, "axis": _axis}


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    return resize(image, max(1, round(w * f)), max(1, round(h * f)))


def parse_palette(text: str, where: str = "palette") -> list[str]:
    """'#223344, ddcc88' -> ['#223344', '#ddcc88']."""
    tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    colors = []
    for token in tokens:
        match = HEX_COLOR.fullmatch(token)
        if not match:
            raise InputError(where, "not a colour", value=token, allowed="hex colours such as #223344, #ddcc88")
        colors.append("#" + match.group(1).lower())
    if not colors:
        raise InputError(where, "the palette is empty", allowed="hex colours such as #223344, #ddcc88")
    return colors


def _check_choice(where: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(where, "unknown choice", value=value, allowed=", ".join(allowed))
