"""The job spec: the one contract between the add-on and the engine (DESIGN.md, version 1).

Validation is pydantic v2. Unknown keys are refused, NaN and infinity are refused, and every
error is turned into a SpecError that names the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from regia_contract import SPEC_VERSION
from regia_contract.kinds import (
    CANVAS_GUIDE_KINDS,
    GENERATOR_KINDS,
    GUIDE_KINDS,
    LOSS_GUIDE_KINDS,
)
from regia_contract.limits import (
    DEFAULT_DIFFUSION_STEPS,
    DEFAULT_PREVIEW_EVERY,
    DEFAULT_SIDE,
    DEFAULT_STEPS,
    DEFAULT_STRENGTH,
    MAX_CFG,
    MAX_FEATHER,
    MAX_GUIDES,
    MAX_NAME,
    MAX_REGIONS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_STRENGTH,
    MIN_SIDE,
)

from .errors import SpecError, SpecErrors, short_repr
from .guides.kinds import GUIDES
from .input_files import TEXT_FILE_LIMIT, read_input_file
from .spec_models import (  # noqa: F401 - re-exported: the spec's parts are imported from here
    ClipModel,
    DiffusionGenerator,
    DiffusionModel,
    FourierGenerator,
    Generator,
    Models,
    Optimizer,
    PixelsGenerator,
)
from .spec_types import ImageRef, Strict, Weight
from .strict_json import DuplicateKey, loads_strict

# Every guide kind's model, from the table (engine/guides/kinds.py), discriminated by `kind`.
Guide = Annotated[Union[tuple(entry.model for entry in GUIDES.values())], Field(discriminator="kind")]  # noqa: UP007


# ---- regions ----------------------------------------------------------------------------


class Region(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    mask: ImageRef
    feather: float = Field(default=0.0, ge=0.0, le=MAX_FEATHER, description="Soft edge width in pixels")
    mode: Literal["edit", "keep", "embolden"] = "edit"
    strength: float = Field(default=DEFAULT_STRENGTH, ge=0.0, le=MAX_STRENGTH, description="How far embolden goes")
    guidance_scale: float | None = Field(
        default=None, ge=0.0, le=MAX_CFG, description="The diffusion generator's guidance scale here (None: its cfg)"
    )
    init_strength: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="The diffusion generator's strength here: how far from init.image (None: the generator's)",
    )
    guides: list[Guide] = Field(default_factory=list, max_length=MAX_GUIDES)

    @model_validator(mode="after")
    def _keep_has_no_guides(self) -> Region:
        if self.mode == "keep" and self.guides:
            raise ValueError("a keep region takes no guides: its pixels stay as in the init image")
        return self


class Init(Strict):
    image: ImageRef


class Losses(Strict):
    """Shorthand for whole-canvas losses over everything generated: `tv`, `saturation`, `symmetry` (left-right).
    The same kinds also work as guides, in any region or top level."""

    tv: Weight = 0.0
    saturation: Weight = 0.0
    symmetry: Weight = 0.0


assert tuple(Losses.model_fields) == LOSS_GUIDE_KINDS


class Cutouts(Strict):
    """CLIP sees the image through square cutouts. One budget per step serves every region: each region's share
    follows its area, with a minimum, and all cutouts go through one CLIP forward."""

    count: int = Field(default=32, ge=1, le=512, description="Cutouts per step, shared by all regions by area")
    min_per_region: int = Field(default=4, ge=1, le=64, description="Fewest cutouts any guided region gets")
    cut_pow: float = Field(default=1.0, gt=0.0, le=4.0, description="Above 1 favours small cutouts (detail)")
    augment: bool = Field(default=True, description="Perspective, affine, colour jitter and noise per cutout")


# ---- the job ----------------------------------------------------------------------------


class JobSpec(Strict):
    version: Literal[1] = SPEC_VERSION
    width: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE)
    height: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    steps: int = Field(default=DEFAULT_STEPS, ge=1, le=MAX_STEPS)
    generator: Generator = Field(default_factory=lambda: PixelsGenerator(kind="pixels"))
    optimizer: Optimizer = Field(default_factory=Optimizer)
    init: Init | None = None
    preset: str | None = Field(default=None, min_length=1, max_length=64)
    guides: list[Guide] = Field(default_factory=list, max_length=MAX_GUIDES)
    losses: Losses = Field(default_factory=Losses)
    regions: list[Region] = Field(default_factory=list, max_length=MAX_REGIONS)
    models: Models = Field(default_factory=Models)
    cutouts: Cutouts = Field(default_factory=Cutouts)
    preview_every: int = Field(default=DEFAULT_PREVIEW_EVERY, ge=0, le=MAX_STEPS, description="0 means no previews")
    tileable: bool = Field(
        default=False,
        description="The canvas is a torus: its left edge meets its right and its top meets its bottom, for "
        "textures that repeat without a seam",
    )

    @model_validator(mode="after")
    def _diffusion_steps(self) -> JobSpec:
        """A diffusion sampler needs tens of steps, not the optimiser's hundreds: its default when steps is unset."""
        if self.generator.kind == "diffusion" and "steps" not in self.model_fields_set:
            self.steps = DEFAULT_DIFFUSION_STEPS
        return self

    @field_validator("regions")
    @classmethod
    def _region_strength_needs_an_init(cls, regions: list[Region], info: ValidationInfo) -> list[Region]:
        generator, init = info.data.get("generator"), info.data.get("init")
        for index, region in enumerate(regions):
            if region.init_strength is not None and (init is None or getattr(generator, "kind", "") != "diffusion"):
                raise ValueError(
                    f"regions[{index}].init_strength is {region.init_strength}: a region's own strength needs "
                    "init.image and the diffusion generator; leave it unset"
                )
        return regions

    @field_validator("regions")
    @classmethod
    def _region_names_unique(cls, regions: list[Region]) -> list[Region]:
        first: dict[str, int] = {}
        for index, region in enumerate(regions):
            if region.name in first:
                raise ValueError(
                    f"regions[{index}].name {region.name!r} is already used by regions[{first[region.name]}]; "
                    "region names must be unique"
                )
            first[region.name] = index
        return regions

    def _images(self) -> list[tuple[str, str, bool]]:
        """Every image reference as (field path, ref, whether it must be exactly the canvas's size)."""
        found: list[tuple[str, str, bool]] = []
        if self.init is not None:
            found.append(("init.image", self.init.image, True))
        for index, guide in enumerate(self.guides):
            if hasattr(guide, "image"):
                found.append((f"guides[{index}].image", guide.image, guide.kind in CANVAS_GUIDE_KINDS))
        for r_index, region in enumerate(self.regions):
            found.append((f"regions[{r_index}].mask", region.mask, True))
            for g_index, guide in enumerate(region.guides):
                if hasattr(guide, "image"):
                    path = f"regions[{r_index}].guides[{g_index}].image"
                    found.append((path, guide.image, guide.kind in CANVAS_GUIDE_KINDS))
        return found

    def image_refs(self) -> list[tuple[str, str]]:
        """Every image reference in the spec, as (field path, ref)."""
        return [(field, ref) for field, ref, _ in self._images()]

    def canvas_image_refs(self) -> list[tuple[str, str]]:
        """The references that must be exactly the canvas's size: init, masks, scribbles and outlines."""
        return [(field, ref) for field, ref, canvas in self._images() if canvas]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# ---- validation with field-naming errors -----------------------------------------------

_TAGS = set(GUIDE_KINDS) | set(GENERATOR_KINDS)


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Annotated / Optional / Union."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk a pydantic error location down the spec's model tree (used to list allowed fields)."""
    candidates: list[Any] = [JobSpec]
    for part in loc:
        nxt: list[Any] = []
        for cand in candidates:
            if isinstance(part, int) and typing.get_origin(cand) is list:
                nxt.extend(_unwrap(typing.get_args(cand)[0]))
            elif isinstance(part, str) and isinstance(cand, type) and issubclass(cand, BaseModel):
                if part in cand.model_fields:
                    nxt.extend(_unwrap(cand.model_fields[part].annotation))
                elif part in _TAGS:
                    kind = cand.model_fields.get("kind")
                    if kind is not None and part in typing.get_args(kind.annotation):
                        nxt.append(cand)
        candidates = nxt
        if not candidates:
            return None
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if len(models) == 1 else None


def _path(loc: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """Human field path like regions[0].guides[1].weight, without pydantic's union tags."""
    clean: list[Any] = []
    for index, part in enumerate(loc):
        prev = loc[index - 1] if index else None
        if isinstance(part, str) and part in _TAGS and (isinstance(prev, int) or prev == "generator"):
            continue  # the discriminator tag pydantic inserts for tagged unions
        clean.append(part)
    text = ""
    for part in clean:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(spec)", loc


def _allowed(err: dict[str, Any], loc: tuple[Any, ...]) -> str | None:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        return ", ".join(model.model_fields) if model else None
    if kind == "union_tag_invalid":
        return str(ctx.get("expected_tags", "")).replace("'", "")
    if kind == "literal_error":
        return str(ctx.get("expected", "")).replace("'", "")
    if kind == "finite_number":
        return "a finite number"
    bounds = []
    for key, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if key in ctx:
            bounds.append(f"{sign} {ctx[key]}")
    if "min_length" in ctx:
        bounds.append(f"at least {ctx['min_length']} items/characters")
    if "max_length" in ctx:
        bounds.append(f"at most {ctx['max_length']} items/characters")
    if "pattern" in ctx:
        bounds.append(f"matching {ctx['pattern']}")
    return ", ".join(bounds) or None


def _convert(err: dict[str, Any]) -> SpecError:
    loc = tuple(err["loc"])
    field, _ = _path(loc)
    kind = err["type"]
    value = err.get("input")
    message = err["msg"]
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}"
        value = None
    elif kind == "union_tag_invalid":
        field = f"{field}.{err['ctx']['discriminator'].strip(chr(39))}"
        message = "unknown kind"
        value = err["ctx"]["tag"]
    elif kind == "union_tag_not_found":
        field = f"{field}.kind"
        message = "'kind' is missing"
        value = None
    elif kind == "missing":
        message = "required field is missing"
        value = None
    elif kind == "value_error":
        message = str(err.get("ctx", {}).get("error", message))
        value = None if isinstance(value, dict) else value
    if isinstance(value, (dict, list)) and kind not in ("too_short", "too_long"):
        value = None
    return SpecError(field, message, value=value, allowed=_allowed(err, loc))


def validate_model(model: type[BaseModel], data: Any, what: str) -> Any:
    """Parse a decoded JSON object into `model` (a request other than a job spec), or raise SpecErrors naming every
    bad field as validate_spec does."""
    if not isinstance(data, dict):
        raise SpecErrors([SpecError("(body)", f"{what} must be a JSON object", value=short_repr(data))])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors([_convert(e) for e in exc.errors(include_url=False)]) from None


def validate_spec(data: Any) -> JobSpec:
    """Parse a decoded JSON object into a JobSpec, or raise SpecErrors naming every bad field."""
    if not isinstance(data, dict):
        raise SpecErrors([SpecError("(spec)", "the spec must be a JSON object", value=short_repr(data))])
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors([_convert(e) for e in exc.errors(include_url=False)]) from None


def decode_json(text: str, source: str) -> Any:
    """JSON text as Python data, or SpecErrors saying where it stops being JSON (`source` names the input)."""
    try:
        return loads_strict(text)
    except DuplicateKey as exc:
        raise SpecErrors([SpecError(source, str(exc), value=exc.key, allowed="each key once per object")]) from None
    except json.JSONDecodeError as exc:
        raise SpecErrors(
            [SpecError(source, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        ) from None


def read_text_file(path: Path, what: str) -> str:
    """A spec-like file's text, or SpecErrors naming `what` it is and why it cannot be read."""
    try:
        return read_input_file(path, what, TEXT_FILE_LIMIT).decode("utf-8")
    except SpecError as exc:
        raise SpecErrors([exc]) from None
    except UnicodeDecodeError as exc:
        raise SpecErrors([SpecError(what, f"cannot read {path}: not UTF-8 text ({exc.reason})")]) from None


def parse_spec_json(text: str, source: str = "spec") -> JobSpec:
    return validate_spec(decode_json(text, source))


def load_spec_file(path: Path) -> JobSpec:
    return parse_spec_json(read_text_file(path, "spec"), source=str(path))


def json_schema() -> dict[str, Any]:
    schema = JobSpec.model_json_schema()
    schema["$id"] = f"https://regia.invalid/job-spec/v{SPEC_VERSION}.json"
    schema["title"] = "Regia job spec"
    return schema
