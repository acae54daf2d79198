"""The storyboard file, version 1: its pydantic model and validation with field-naming errors.

A storyboard file (JSON) holds the canvas and run settings and the shared style once, and a list of shots, each with
its own description, seed, init image, guides and regions. Image references are paths relative to the storyboard
file, or blob:<sha256> over HTTP, as in job specs. The format is documented in README.md ("Storyboards"); the add-on
writes it, so fields may be added but not renamed. Bounds are the contract's (regia_contract/limits.py).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from regia_contract import STORYBOARD_VERSION
from regia_contract.kinds import SEED_RULES
from regia_contract.limits import (
    DEFAULT_PALETTE_WEIGHT,
    DEFAULT_PREVIEW_EVERY,
    DEFAULT_SIDE,
    DEFAULT_STEPS,
    DEFAULT_STYLE_WEIGHT,
    FRAME_LIMIT,
    MAX_NAME,
    MAX_PALETTE,
    MAX_REGIONS,
    MAX_SEED,
    MAX_SHOT_GUIDES,
    MAX_SHOT_TEXT,
    MAX_SHOTS,
    MAX_SIDE,
    MAX_STEPS,
    MAX_STORYBOARD_NAME,
    MAX_STYLE_IMAGES,
    MAX_STYLE_TEXT,
    MIN_SIDE,
)

from ..errors import SpecError, SpecErrors, short_repr
from ..spec import (
    Cutouts,
    Generator,
    Guide,
    Init,
    Losses,
    Models,
    Optimizer,
    PixelsGenerator,
    Region,
    _convert,
    _unwrap,
    decode_json,
    read_text_file,
)
from ..spec_types import HexColor, ImageRef, Strict, Weight


class StoryStyle(Strict):
    """The look every shot shares. prompt and negative need models.clip; without it they are left out."""

    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_STYLE_IMAGES)
    weight: Weight = DEFAULT_STYLE_WEIGHT
    palette: list[HexColor] = Field(default_factory=list, max_length=MAX_PALETTE)
    palette_weight: Weight = DEFAULT_PALETTE_WEIGHT
    prompt: str = Field(
        default="", max_length=MAX_STYLE_TEXT, description="Style prompt; {prompt} is the shot's description"
    )
    negative: str = Field(default="", max_length=MAX_STYLE_TEXT)


class Shot(Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME, description="Unique in the storyboard; names the shot's file")
    frame_start: int = Field(ge=-FRAME_LIMIT, le=FRAME_LIMIT)
    frame_end: int = Field(ge=-FRAME_LIMIT, le=FRAME_LIMIT)
    description: str = Field(
        default="", max_length=MAX_SHOT_TEXT, description="What the shot shows (CLIP text, and label)"
    )
    negative: str = Field(
        default="", max_length=MAX_SHOT_TEXT, description="What it must not show (CLIP negative text)"
    )
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Overrides the storyboard's seed rule")
    init: Init | None = None
    guides: list[Guide] = Field(default_factory=list, max_length=MAX_SHOT_GUIDES)
    regions: list[Region] = Field(default_factory=list, max_length=MAX_REGIONS)


class Storyboard(Strict):
    version: Literal[1] = STORYBOARD_VERSION
    name: str = Field(default="Storyboard", min_length=1, max_length=MAX_STORYBOARD_NAME)
    width: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE)
    height: int = Field(default=DEFAULT_SIDE, ge=MIN_SIDE, le=MAX_SIDE)
    steps: int = Field(default=DEFAULT_STEPS, ge=1, le=MAX_STEPS)
    generator: Generator = Field(default_factory=lambda: PixelsGenerator(kind="pixels"))
    optimizer: Optimizer = Field(default_factory=Optimizer)
    preset: str | None = Field(default=None, min_length=1, max_length=64)
    losses: Losses = Field(default_factory=Losses)
    style: StoryStyle = Field(default_factory=StoryStyle)
    models: Models = Field(default_factory=Models)
    cutouts: Cutouts = Field(default_factory=Cutouts)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    seed_rule: Literal[SEED_RULES] = "fixed"  # type: ignore[valid-type]
    preview_every: int = Field(default=DEFAULT_PREVIEW_EVERY, ge=0, le=MAX_STEPS)
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS)


# ---- validation with field-naming errors -----------------------------------------------


def _fields_at(loc: tuple[Any, ...]) -> str | None:
    """The fields allowed where an unknown key was found, by walking the error location from Storyboard."""
    candidates: list[Any] = [Storyboard]
    for part in loc:
        found: list[Any] = []
        for cand in candidates:
            if isinstance(part, int) and typing.get_origin(cand) is list:
                found.extend(_unwrap(typing.get_args(cand)[0]))
            elif isinstance(part, str) and isinstance(cand, type) and issubclass(cand, BaseModel):
                if part in cand.model_fields:
                    found.extend(_unwrap(cand.model_fields[part].annotation))
                elif part in typing.get_args(getattr(cand.model_fields.get("kind"), "annotation", None)):
                    found.append(cand)  # the tag pydantic inserts for a tagged union member
        candidates = found
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return ", ".join(models[0].model_fields) if len(models) == 1 else None


def _pydantic_errors(exc: ValidationError) -> list[SpecError]:
    errors = []
    for err in exc.errors(include_url=False):
        error = _convert(err)
        if error.field == "(spec)":
            error.field = "(storyboard)"
        if err["type"] == "extra_forbidden":  # spec.py lists a JobSpec's fields; here the storyboard's
            error.allowed = _fields_at(tuple(err["loc"])[:-1])
        errors.append(error)
    return errors


def _shot_problems(board: Storyboard) -> list[SpecError]:
    """What the schema cannot say: unique shot and region names, frame order, and that every shot's job is valid."""
    problems: list[SpecError] = []
    first: dict[str, int] = {}
    for index, shot in enumerate(board.shots):
        if shot.name in first:
            problems.append(
                SpecError(
                    f"shots[{index}].name",
                    f"already used by shots[{first[shot.name]}]; shot names must be unique",
                    value=shot.name,
                )
            )
        first.setdefault(shot.name, index)
        if shot.frame_end < shot.frame_start:
            problems.append(
                SpecError(
                    f"shots[{index}].frame_end",
                    f"ends before the shot starts (frame_start {shot.frame_start})",
                    value=shot.frame_end,
                    allowed=f">= {shot.frame_start}",
                )
            )
        regions: dict[str, int] = {}
        for r_index, region in enumerate(shot.regions):
            if region.name in regions:
                problems.append(
                    SpecError(
                        f"shots[{index}].regions[{r_index}].name",
                        f"already used by shots[{index}].regions[{regions[region.name]}]; region names must be unique",
                        value=region.name,
                    )
                )
            regions.setdefault(region.name, r_index)
    if problems:
        return problems
    from .expand import ShotJobs  # expansion needs a valid board: imported here, after the checks above

    jobs = ShotJobs(board)
    for index in range(len(board.shots)):
        try:
            jobs.spec(index)
        except SpecErrors as exc:  # a safety net: the bounds above are meant to make this unreachable
            problems.extend(jobs.errors(index, exc.errors))
    return problems


def validate_storyboard(data: Any) -> Storyboard:
    """Parse a decoded JSON object into a Storyboard, or raise SpecErrors naming every bad field."""
    if not isinstance(data, dict):
        raise SpecErrors([SpecError("(storyboard)", "a storyboard must be a JSON object", value=short_repr(data))])
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(_pydantic_errors(exc)) from None
    problems = _shot_problems(board)
    if problems:
        raise SpecErrors(problems)
    return board


def parse_storyboard_json(text: str, source: str = "storyboard") -> Storyboard:
    return validate_storyboard(decode_json(text, source))


def load_storyboard_file(path: Path) -> Storyboard:
    return parse_storyboard_json(read_text_file(path, "storyboard"), source=str(path))
