"""The diffusion generator, the add-on's pure side: its settings (sampler, steps, CFG scale, strength, how often the
other guides pull), its spec, the canvas it needs, and the Diffusion Models list of the preferences (what is wrong
with an entry's path, and which entry a setting names).

With the diffusion generator, text guides are its prompts (a region's texts are its prompt, its negative-weight
texts its negative prompt; the guides for all regions are the prompt for uncovered pixels and join every edit
region's): they need no CLIP model. Inspiration (image) guides still do. Everything else works as with the other
generators. No bpy here: addon/blender/ copies properties into DiffusionInput and ModelEntry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..regia_contract.kinds import DIFFUSION_SAMPLERS
from ..regia_contract.limits import DEFAULT_CFG, DEFAULT_DIFFUSION_STEPS, MAX_CFG

KIND = "diffusion"
CANVAS_MULTIPLE = 8  # SD's VAE works on 8x8 pixel cells: the engine refuses other canvas sizes for real models
MODEL_SUFFIXES = (".safetensors", ".ckpt")
RANDOM_PREFIX = "random:"  # untrained test models ('random:tiny-sd'); any engine takes them, nothing is read
DEFAULT_STEPS, DEFAULT_SCALE = DEFAULT_DIFFUSION_STEPS, DEFAULT_CFG
DEFAULT_GUIDANCE_EVERY, DEFAULT_GUIDANCE_STRENGTH = 2, 1.0
MAX_GUIDANCE_EVERY, MAX_GUIDANCE_STRENGTH = 1000, 100.0
MODELS_LIST = "the Diffusion Models list in Regia's preferences"

# Label and tooltip of each sampler the engine knows (regia_contract.kinds.DIFFUSION_SAMPLERS).
SAMPLERS = {
    "euler": ("Euler", "Euler: steady and fast; the usual choice"),
    "euler_ancestral": (
        "Euler Ancestral",
        "Euler with fresh noise at each step: livelier, more varied images; more steps keep changing the image",
    ),
    "ddim": ("DDIM", "DDIM: deterministic and smooth; good with few steps and with Start from Target"),
    "dpmpp_2m": ("DPM++ 2M", "DPM-Solver++ 2M: sharp, detailed results in few steps (20 to 30)"),
}

TOOLTIPS = {
    "generator": "A diffusion model (Stable Diffusion 1.x, 2.x or SDXL) samples the image: text guides are each "
    "region's prompt and need no CLIP model; the other guides steer the sampling",
    "model": f"The model to sample with: an entry of {MODELS_LIST} (a diffusers folder or a .safetensors/.ckpt file)",
    "sampler": "How the noise is taken away, step by step",
    "steps": "Sampling steps: 20 to 50 is usual; more is slower",
    "cfg": "Classifier-free guidance: how closely the image follows the prompts; higher follows them more closely but "
    "harsher, 5 to 9 is usual",
    "strength": "Only with Start from Target: how far the image may move from the target. 1 starts from noise (the "
    "target stays only in keep regions); lower keeps more of the target. Without Start from Target it does nothing",
    "guidance_every": "How often the guides other than text (style, content, scribble, outline, palette, smoothness, "
    "saturation, symmetry, inspiration) pull on the image being sampled: every this many steps (1: every step, "
    "slower)",
    "guidance_strength": "How hard the guides other than text pull on the image being sampled (0: not at all)",
    "use_guidance_scale": "Give this region a CFG scale of its own, instead of the generator's (embolden regions get "
    "a higher one unless set here)",
    "guidance_scale": "This region's classifier-free guidance scale: how closely it follows its prompts",
    "use_own_strength": "Give this region a strength of its own, instead of the Settings' Strength: lower keeps "
    "more of the target here (the region joins the sampling later, from the target with less noise)",
    "own_strength": "This region's strength: how far it may move from the target (1 starts from noise)",
}


def sampler_items() -> list[tuple[str, str, str]]:
    """Blender EnumProperty items for the samplers, in the contract's order."""
    return [(s, *SAMPLERS.get(s, (s.replace("_", " ").title(), f"The {s} sampler"))) for s in DIFFUSION_SAMPLERS]


@dataclass
class DiffusionInput:
    """The diffusion generator's settings; `weights` is the model's path as the engine takes it ('' for none)."""

    weights: str = ""
    sampler: str = "euler"
    cfg: float = DEFAULT_CFG
    strength: float = 1.0
    guidance_every: int = DEFAULT_GUIDANCE_EVERY
    guidance_strength: float = DEFAULT_GUIDANCE_STRENGTH


def generator_spec(kind: str, diffusion: DiffusionInput) -> dict[str, Any]:
    """The spec's `generator`: the kind alone, or with the diffusion generator every one of its settings."""
    if kind != KIND:
        return {"kind": kind}
    return {
        "kind": KIND,
        "sampler": diffusion.sampler,
        "cfg": float(diffusion.cfg),
        "strength": float(diffusion.strength),
        "guidance_every": int(diffusion.guidance_every),
        "guidance_strength": float(diffusion.guidance_strength),
    }


def round_side(pixels: float, multiple: int = CANVAS_MULTIPLE) -> int:
    """A canvas side rounded to the nearest multiple, halves up (never below one multiple)."""
    return max(multiple, int(pixels / multiple + 0.5) * multiple)


def diffusion_problems(diffusion: DiffusionInput) -> list[tuple[str, str, Any, str]]:
    """(where, message, value, allowed) for every setting the engine would refuse, in the panel's words."""
    problems = []
    if diffusion.sampler not in DIFFUSION_SAMPLERS:
        problems.append(("Sampler", "unknown choice", diffusion.sampler, ", ".join(DIFFUSION_SAMPLERS)))
    if not 0.0 <= diffusion.cfg <= MAX_CFG:
        problems.append(("CFG Scale", "out of range", diffusion.cfg, f"0 to {MAX_CFG:g}"))
    if not 0.0 < diffusion.strength <= 1.0:
        problems.append(("Strength", "out of range", diffusion.strength, "more than 0, at most 1"))
    if not 1 <= diffusion.guidance_every <= MAX_GUIDANCE_EVERY:
        problems.append(("Guidance Every", "out of range", diffusion.guidance_every, f"1 to {MAX_GUIDANCE_EVERY}"))
    if not 0.0 <= diffusion.guidance_strength <= MAX_GUIDANCE_STRENGTH:
        problems.append(("Guidance Strength", "out of range", diffusion.guidance_strength,
                         f"0 to {MAX_GUIDANCE_STRENGTH:g}"))  # fmt: skip
    return problems


# ---- the Diffusion Models list -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """One entry of the preferences' Diffusion Models list."""

    label: str
    path: str


def is_random(path: str) -> bool:
    return path.strip().startswith(RANDOM_PREFIX)


def model_path_problem(path: str) -> str | None:
    """What is wrong with a Diffusion Models entry's path on this computer, in the artist's words; None when it is a
    diffusers folder, a .safetensors or .ckpt file, or an untrained test model ('random:tiny-sd')."""
    path = path.strip()
    if not path:
        return "No path is set: choose a diffusers folder or a .safetensors or .ckpt file"
    if is_random(path):
        return None
    if not os.path.exists(path):
        return (
            f"{path} does not exist on this computer: choose a diffusers folder or a .safetensors or .ckpt file "
            "(a remote engine reads its own disk: there, use the path it was started with)"
        )
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            return f"{path} is not a diffusers folder: it has no model_index.json"
        return None
    if not path.lower().endswith(MODEL_SUFFIXES):
        name = os.path.basename(path)
        return f"{name} is not a model file: choose a .safetensors or .ckpt file, or a diffusers folder"
    return None


def label_for(path: str) -> str:
    """A label for a new entry: the file's or folder's name, without its suffix."""
    path = path.strip().rstrip("/\\")
    if is_random(path):
        return path
    name = os.path.basename(path)
    stem, suffix = os.path.splitext(name)
    return stem if suffix.lower() in MODEL_SUFFIXES else name or "Diffusion Model"


@dataclass(frozen=True)
class Unlisted:
    """A Diffusion Model choice that names no usable entry: what to say, and what would be allowed."""

    message: str
    value: str
    allowed: str


def resolve_model(choice: str, entries: list[ModelEntry]) -> str | Unlisted:
    """The path of the entry a setting names (by its label, or by its path), '' when nothing is chosen, or Unlisted:
    a path not in the list is never sent, so no setting names a file the artist did not add."""
    choice = choice.strip()
    if not choice:
        return ""
    labels = ", ".join(f"'{e.label}'" for e in entries if e.label.strip()) or "none yet: add one in Regia's preferences"
    for matches in (lambda e: e.label.strip() == choice, lambda e: e.path.strip() == choice):
        entry = next((e for e in entries if matches(e)), None)
        if entry is not None:
            if not entry.path.strip():
                return Unlisted(f"the model '{entry.label}' has no path in {MODELS_LIST}", choice,
                                "a diffusers folder or a .safetensors or .ckpt file")  # fmt: skip
            return entry.path.strip()
    return Unlisted(f"the model '{choice}' is not in {MODELS_LIST}", choice, labels)


# ---- the managed engine's options, and /health's words -----------------------------------------------------------


def clip_models(text: str) -> list[str]:
    """'ViT-B-32:laion2b_s34b_b79k, regia-tiny:random' -> the NAME:WEIGHTS pairs, for `serve --clip`."""
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def serve_args(clip: list[str], diffusion: list[str]) -> list[str]:
    """The managed engine's model options, each value joined to its option (`--name=value`): a path starting with
    '-' is never read as an option. Repeats and empty entries are dropped."""
    args = [f"--clip={model}" for model in dict.fromkeys(m.strip() for m in clip) if model]
    args += [f"--diffusion={path}" for path in dict.fromkeys(p.strip() for p in diffusion) if path]
    return args


def health_line(health: dict[str, Any]) -> str:
    """/health as the status line says it: version, device, CLIP models present and missing, and diffusion models
    present and missing (said only when the engine reports them)."""
    models = health.get("models") or {}
    present, missing = models.get("present") or [], models.get("missing") or []
    line = f"Engine {health.get('version', '?')} on {health.get('device', '?')}"
    if present:
        line += f"; CLIP models present: {', '.join(present)}"
    if missing:
        line += f"; CLIP models missing: {', '.join(missing)} (python -m engine fetch-models NAME:TAG)"
    if not present and not missing:
        line += "; no CLIP models configured (style, content, scribble, outline and palette guides need none)"
    diffusion = health.get("diffusion_models")
    if isinstance(diffusion, dict):
        found, lost = diffusion.get("present") or [], diffusion.get("missing") or []
        if found:
            line += f"; diffusion models present: {', '.join(found)}"
        if lost:
            line += f"; diffusion models missing: {', '.join(lost)} (fix the path in {MODELS_LIST})"
    return line
