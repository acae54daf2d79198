"""Style presets: TOML files in presets/ that both the add-on and the engine read.

A preset supplies defaults. Whatever the spec sets explicitly wins.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from regia_contract.kinds import DIFFUSION_SAMPLERS
from regia_contract.limits import MAX_CFG, MAX_STEPS
from regia_contract.storyboard import DEFAULT_SUBJECT, PROMPT_SLOT, STYLE_PROMPT_WEIGHT

from .errors import SpecError
from .guides.kinds import PaletteGuide, TextGuide
from .spec import JobSpec, Losses
from .spec_types import HexColor, Strict, Weight


class PresetDiffusion(Strict):
    """What a preset sets for the diffusion generator, where the spec leaves it unset."""

    sampler: Literal[DIFFUSION_SAMPLERS] | None = None  # type: ignore[valid-type]
    steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    cfg: float | None = Field(default=None, ge=0.0, le=MAX_CFG)


class Preset(Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    prompt: str = Field(default="{prompt}", description="Style prompt; {prompt} is the region's text")
    negative: str = ""
    palette: list[HexColor] = Field(default_factory=list, max_length=64)
    palette_weight: Weight = 0.0
    losses: Losses = Field(default_factory=Losses)
    diffusion: PresetDiffusion = Field(default_factory=PresetDiffusion)


def presets_dir() -> Path:
    override = os.environ.get("REGIA_PRESETS_DIR")
    return Path(override) if override else Path(__file__).resolve().parent.parent / "presets"


def known_presets(folder: Path | None = None) -> list[str]:
    folder = folder or presets_dir()
    return sorted(p.stem for p in folder.glob("*.toml"))


def load_preset(name: str, folder: Path | None = None, field: str = "preset") -> Preset:
    folder = folder or presets_dir()
    known = known_presets(folder)
    if name not in known:
        raise SpecError(field, "unknown preset", value=name, allowed=", ".join(known) or "(no presets found)")
    path = folder / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Preset.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise SpecError(field, f"preset file {path} is broken: {exc}".splitlines()[0], value=name) from None


def apply_preset(spec: JobSpec, folder: Path | None = None) -> JobSpec:
    """The spec with its preset's defaults filled in. The preset name is kept for the record."""
    if spec.preset is None:
        return spec
    preset = load_preset(spec.preset, folder)
    losses = spec.losses.model_copy(
        update={k: getattr(preset.losses, k) for k in Losses.model_fields if k not in spec.losses.model_fields_set}
    )
    guides = list(spec.guides)
    if preset.palette and preset.palette_weight != 0 and not any(g.kind == "palette" for g in guides):
        guides.append(PaletteGuide(kind="palette", colors=preset.palette, weight=preset.palette_weight))
    # The style prompt needs CLIP, or a generator that takes prompts; without either the preset still gives the rest.
    if spec.models.clip is not None or spec.generator.kind == "diffusion":
        # Idempotent, like the palette: a spec whose preset was applied already (spec.resolved.json) gains nothing.
        guides.extend(g for g in style_prompts(preset, _subject(spec.guides)) if g not in guides)
    update: dict[str, Any] = {"losses": losses, "guides": guides}
    if spec.generator.kind == "diffusion":
        update |= _diffusion_defaults(spec, preset.diffusion)
    return spec.model_copy(update=update)


def _diffusion_defaults(spec: JobSpec, preset: PresetDiffusion) -> dict[str, Any]:
    """The preset's sampler, cfg and steps for a diffusion job, where the spec did not set them."""
    generator = spec.generator
    changes = {
        key: getattr(preset, key)
        for key in ("sampler", "cfg")
        if getattr(preset, key) is not None and key not in generator.model_fields_set
    }
    update: dict[str, Any] = {"generator": generator.model_copy(update=changes)} if changes else {}
    if preset.steps is not None and "steps" not in spec.model_fields_set:
        update["steps"] = preset.steps
    return update


def _subject(guides: list) -> list[str]:
    """The job's own subject: its strongest positive text prompts (a storyboard's shot description at 1 rather
    than its style prompt at 0.5, which would otherwise be wrapped inside the preset's)."""
    positive = [g for g in guides if g.kind == "text" and g.weight > 0]
    strongest = max((g.weight for g in positive), default=0.0)
    return [g.prompt for g in positive if g.weight == strongest]


def style_prompts(preset: Preset, prompts: list[str]) -> list[TextGuide]:
    """The preset's style prompt, around the job's own text ('{prompt}'), and its negative text. As top-level
    guides they apply to every edit region."""
    subject = ", ".join(prompts) or DEFAULT_SUBJECT
    out = [TextGuide(kind="text", prompt=preset.prompt.replace(PROMPT_SLOT, subject), weight=STYLE_PROMPT_WEIGHT)]
    if preset.negative:
        out.append(TextGuide(kind="text", prompt=preset.negative, weight=-STYLE_PROMPT_WEIGHT))
    return out
