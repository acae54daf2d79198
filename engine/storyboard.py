"""Storyboards: many shots, one image each, generated in one shared style so that they read as one story.

A storyboard file (JSON, version 1) holds the canvas and run settings and the shared style once, and a list of
shots, each with its own description, seed, init image, guides and regions. `shot_spec` turns one shot into an
ordinary JobSpec, so a shot runs exactly like any job: from the CLI (`python -m engine storyboard`), which renders
every shot in one process (feature net, CLIP model and style statistics loaded once), or as one job per shot
on the engine server, which is what the add-on does.

Image references are paths relative to the storyboard file, or blob:<sha256> over HTTP, as in job specs. The
format is documented in README.md ("Storyboards"); the add-on writes it, so fields may be added but not renamed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from .errors import RegiaError, SpecError, SpecErrors, short_repr
from .presets import STYLE_PROMPT_WEIGHT
from .spec import (
    MAX_SIDE,
    Cutouts,
    Generator,
    Guide,
    HexColor,
    ImageRef,
    Init,
    JobSpec,
    Losses,
    Models,
    Optimizer,
    PixelsGenerator,
    Region,
    Strict,
    Weight,
    _convert,
    _unwrap,
    decode_json,
    read_text_file,
    validate_spec,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .optimize import Progress
    from .refs import ImageSource

STORYBOARD_VERSION = 1
MAX_SHOTS = 999  # shot files are numbered with three digits
MAX_STYLE_IMAGES = 8
MAX_SHOT_GUIDES = 48  # with the shared guides (at most 8 + 1 + 4) a shot's job stays within JobSpec's 64
FRAME_LIMIT = 1_048_574  # Blender's frame range
DESCRIPTION_WEIGHT, NEGATIVE_WEIGHT = 1.0, -1.0
SUBJECT_PLACEHOLDER = "{prompt}"
DEFAULT_SUBJECT = "a scene"  # what "{prompt}" becomes for a shot without a description, as presets do


# ---- the format -------------------------------------------------------------------------


class StoryStyle(Strict):
    """The look every shot shares. prompt and negative need models.clip; without it they are left out."""

    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_STYLE_IMAGES)
    weight: Weight = 1.0
    palette: list[HexColor] = Field(default_factory=list, max_length=64)
    palette_weight: Weight = 0.3
    prompt: str = Field(default="", max_length=500, description="Style prompt; {prompt} is the shot's description")
    negative: str = Field(default="", max_length=500)


class Shot(Strict):
    name: str = Field(min_length=1, max_length=64, description="Unique in the storyboard; names the shot's file")
    frame_start: int = Field(ge=-FRAME_LIMIT, le=FRAME_LIMIT)
    frame_end: int = Field(ge=-FRAME_LIMIT, le=FRAME_LIMIT)
    description: str = Field(default="", max_length=400, description="What the shot shows (CLIP text, and label)")
    negative: str = Field(default="", max_length=400, description="What it must not show (CLIP negative text)")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Overrides the storyboard's seed rule")
    init: Init | None = None
    guides: list[Guide] = Field(default_factory=list, max_length=MAX_SHOT_GUIDES)
    regions: list[Region] = Field(default_factory=list, max_length=64)


class Storyboard(Strict):
    version: Literal[1] = STORYBOARD_VERSION
    name: str = Field(default="Storyboard", min_length=1, max_length=200)
    width: int = Field(default=512, ge=16, le=MAX_SIDE)
    height: int = Field(default=512, ge=16, le=MAX_SIDE)
    steps: int = Field(default=200, ge=1, le=100_000)
    generator: Generator = Field(default_factory=lambda: PixelsGenerator(kind="pixels"))
    optimizer: Optimizer = Field(default_factory=Optimizer)
    preset: str | None = Field(default=None, min_length=1, max_length=64)
    losses: Losses = Field(default_factory=Losses)
    style: StoryStyle = Field(default_factory=StoryStyle)
    models: Models = Field(default_factory=Models)
    cutouts: Cutouts = Field(default_factory=Cutouts)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    seed_rule: Literal["fixed", "per_shot"] = "fixed"
    preview_every: int = Field(default=10, ge=0, le=100_000)
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
    for index in range(len(board.shots)):
        try:
            shot_spec(board, index)
        except SpecErrors as exc:  # a safety net: the bounds above are meant to make this unreachable
            problems.extend(
                SpecError(job_field(board, index, e.field), e.detail, e.value, e.allowed) for e in exc.errors
            )
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


# ---- one shot as a job ------------------------------------------------------------------


def derived_seed(seed: int, name: str) -> int:
    """The per_shot rule: the first 4 bytes (big-endian) of sha256("<seed>:<name>"), UTF-8. It depends on the
    name only, so reordering shots keeps their seeds, and it is the same in every process and on every machine."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def shot_seed(board: Storyboard, index: int) -> int:
    """The shot's own seed if set; else the storyboard's seed (rule "fixed") or one derived from it and the
    shot's name (rule "per_shot")."""
    shot = board.shots[index]
    if shot.seed is not None:
        return shot.seed
    return board.seed if board.seed_rule == "fixed" else derived_seed(board.seed, shot.name)


def _shared_guides(board: Storyboard, index: int) -> list[tuple[str, dict[str, Any]]]:
    """(storyboard field it comes from, guide) for the guides every shot gets, in the order they appear in a
    shot's job: style images, palette, then the CLIP text (only with models.clip)."""
    style, shot = board.style, board.shots[index]
    guides: list[tuple[str, dict[str, Any]]] = [
        (f"style.images[{i}]", {"kind": "style", "image": image, "weight": style.weight})
        for i, image in enumerate(style.images)
    ]
    if style.palette:
        guides.append(("style.palette", {"kind": "palette", "colors": style.palette, "weight": style.palette_weight}))
    if board.models.clip is None:
        return guides  # text needs CLIP: a storyboard without a model gets the rest of its style
    subject = shot.description.strip() or DEFAULT_SUBJECT
    texts = [
        (f"shots[{index}].description", shot.description, DESCRIPTION_WEIGHT),
        (f"shots[{index}].negative", shot.negative, NEGATIVE_WEIGHT),
        ("style.prompt", style.prompt.replace(SUBJECT_PLACEHOLDER, subject), STYLE_PROMPT_WEIGHT),
        ("style.negative", style.negative, -STYLE_PROMPT_WEIGHT),
    ]
    guides += [(path, {"kind": "text", "prompt": text, "weight": w}) for path, text, w in texts if text.strip()]
    return guides


def shot_spec(board: Storyboard, index: int) -> JobSpec:
    """The job for shot `index`: the storyboard's canvas, steps, generator, optimiser, preset, losses, models,
    cutouts and preview interval; its seed (see shot_seed); top-level guides: one style guide per style image at
    style.weight, a palette guide if style.palette is set, and, only when models.clip is set, CLIP text: the
    shot's description (weight 1) and negative (-1), the style prompt with "{prompt}" replaced by the description
    (0.5) and the style negative (-0.5); then the shot's own guides. Without models.clip the text parts are left
    out (the description still labels the contact sheet). Regions and init are the shot's own."""
    shot = board.shots[index]
    data = {
        "version": 1,
        "width": board.width,
        "height": board.height,
        "seed": shot_seed(board, index),
        "steps": board.steps,
        "generator": board.generator.model_dump(),
        "optimizer": board.optimizer.model_dump(),
        "init": shot.init.model_dump() if shot.init is not None else None,
        "preset": board.preset,
        "guides": [guide for _, guide in _shared_guides(board, index)] + [g.model_dump() for g in shot.guides],
        "losses": board.losses.model_dump(exclude_unset=True),
        "regions": [region.model_dump() for region in shot.regions],
        "models": board.models.model_dump(),
        "cutouts": board.cutouts.model_dump(),
        "preview_every": board.preview_every,
    }
    return validate_spec(data)


def job_field(board: Storyboard, index: int, path: str) -> str:
    """A field path in shot `index`'s job, as the storyboard field it came from (for errors)."""
    shot = board.shots[index]
    found = re.match(r"^guides\[(\d+)\](.*)$", path)
    if found:
        shared = _shared_guides(board, index)
        g_index, rest = int(found.group(1)), found.group(2)
        if g_index < len(shared):
            return shared[g_index][0]
        if g_index < len(shared) + len(shot.guides):
            return f"shots[{index}].guides[{g_index - len(shared)}]{rest}"
        return "preset"  # guides the preset appended (its palette, its style prompt)
    if path.startswith(("regions", "init")):
        return f"shots[{index}].{path}"
    return path  # canvas, run, preset and model fields are the storyboard's own


# ---- rendering all shots in one process -------------------------------------------------


def safe_name(name: str, limit: int = 48) -> str:
    """A shot name as a portable file name part: ASCII letters, digits, '-', '_' and '.'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._-")
    return cleaned[:limit].rstrip("._-") or "shot"


def shot_file(index: int, name: str) -> str:
    """Where shot `index` (0-based) goes, relative to the output folder: numbered in shot order."""
    return f"shots/{index + 1:03d}_{safe_name(name)}.png"


@dataclass
class ShotReport:
    """What became of one shot: one entry of storyboard.json."""

    index: int  # 1-based, as in the file name
    name: str
    frame_start: int
    frame_end: int
    description: str
    seed: int
    file: str | None = None  # relative to the output folder
    status: str = "pending"  # done, failed, skipped, or kept (skipped by --only, its earlier image kept)
    seconds: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)  # the last step's, normalised and weighted
    error: str | None = None
    field: str | None = None  # the storyboard field a failure names

    @property
    def label(self) -> str:
        return f"{self.index:03d} {self.name}  [{self.frame_start}-{self.frame_end}]"


def _report(board: Storyboard, index: int) -> ShotReport:
    shot = board.shots[index]
    return ShotReport(index + 1, shot.name, shot.frame_start, shot.frame_end, shot.description, shot_seed(board, index))


def _used_refs(board: Storyboard) -> list[tuple[str, str]]:
    """(storyboard field, ref) of every image a storyboard names."""
    refs = [(f"style.images[{i}]", ref) for i, ref in enumerate(board.style.images)]
    for index in range(len(board.shots)):
        refs += [(job_field(board, index, path), ref) for path, ref in shot_spec(board, index).image_refs()]
    return refs


def check_shared(board: Storyboard, source: ImageSource) -> None:
    """What every shot needs, checked once before any shot runs: the preset, the style images and the CLIP
    model. A problem here is the storyboard's, not one shot's, so nothing runs."""
    from .job import clip_guides_used
    from .presets import load_preset

    problems: list[SpecError] = []
    if board.preset is not None:
        try:
            load_preset(board.preset)
        except SpecError as exc:
            problems.append(exc)
    for index, ref in enumerate(board.style.images):
        try:
            source.open(ref, f"style.images[{index}]")
        except SpecError as exc:
            problems.append(exc)
    clip = board.models.clip
    if clip is not None and any(clip_guides_used(shot_spec(board, i)) for i in range(len(board.shots))):
        from .models import check_clip_available  # open_clip loads only for storyboards that use it

        missing = check_clip_available(clip.name, clip.weights)
        if missing is not None:
            problems.append(missing)
    if problems:
        raise SpecErrors(problems)


def _error_of(exc: Exception, board: Storyboard, index: int) -> tuple[str, str | None]:
    """(one-line message, storyboard field) of a shot's failure."""
    if isinstance(exc, SpecErrors):
        errors = exc.errors
    elif isinstance(exc, SpecError):
        errors = [exc]
    else:
        first = (str(exc).splitlines() or [""])[0][:200]
        return f"{type(exc).__name__}: {first}", None
    mapped = [SpecError(job_field(board, index, e.field), e.detail, e.value, e.allowed) for e in errors]
    return "; ".join(e.one_line() for e in mapped), mapped[0].field


def render_shot(
    board: Storyboard,
    index: int,
    source: ImageSource,
    device: torch.device,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[ShotReport, np.ndarray | None]:
    """Prepare and run one shot. A failure is reported (message, storyboard field), never raised, so that the
    other shots still run; only an interrupt stops everything."""
    from .job import prepare_job
    from .optimize import run

    report = _report(board, index)
    start = time.perf_counter()
    try:
        result = run(prepare_job(shot_spec(board, index), source, device), on_progress=on_progress)
    except Exception as exc:  # one bad shot (its own image, out of memory) must not stop the storyboard
        if device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        report.status = "failed"
        report.error, report.field = _error_of(exc, board, index)
        report.seconds = round(time.perf_counter() - start, 3)
        return report, None
    report.status = "done"
    report.seconds = round(time.perf_counter() - start, 3)
    report.losses = dict(result.history[-1]) if result.history else {}
    return report, result.image


def _previous_reports(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Shot entries of an earlier storyboard.json in this folder, by name (kept for shots --only skips)."""
    try:
        data = json.loads((out_dir / "storyboard.json").read_text(encoding="utf-8"))
        return {entry["name"]: entry for entry in data["shots"] if entry.get("status") in ("done", "kept")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _skipped(board: Storyboard, index: int, out_dir: Path, previous: dict[str, dict[str, Any]]) -> ShotReport:
    shot = board.shots[index]
    report = _report(board, index)
    report.status = "skipped"
    earlier = previous.get(shot.name)
    if (
        earlier is not None
        and earlier.get("file") == shot_file(index, shot.name)
        and (out_dir / earlier["file"]).is_file()
    ):
        report.status, report.file = "kept", earlier["file"]
        report.seconds, report.losses = float(earlier.get("seconds", 0.0)), dict(earlier.get("losses", {}))
    return report


def check_outputs(board: Storyboard, source: ImageSource, out_dir: Path) -> None:
    """Refuse an output folder where a written file would replace one of the storyboard's images."""
    path_of = getattr(source, "path_of", None)
    if path_of is None:  # blob sources have no paths to collide with
        return
    written = {(out_dir / name).resolve() for name in ("contact_sheet.png", "storyboard.json")}
    written |= {(out_dir / shot_file(i, shot.name)).resolve() for i, shot in enumerate(board.shots)}
    for field_path, ref in _used_refs(board):
        if not ref.startswith("blob:") and path_of(ref) in written:
            raise SpecError(
                "--out",
                f"this folder would overwrite {field_path}'s image {path_of(ref)}",
                value=str(out_dir),
                allowed="a folder that holds none of the storyboard's images",
            )


def select_shots(board: Storyboard, only: list[str] | None) -> list[int]:
    """Indices of the shots to render: all, or those named by --only (each name must exist)."""
    if not only:
        return list(range(len(board.shots)))
    names = [shot.name for shot in board.shots]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise SpecErrors(
            [SpecError("--only", "no shot has this name", value=name, allowed=", ".join(names)) for name in unknown]
        )
    return [i for i, name in enumerate(names) if name in only]


THUMB_HEIGHT = 256  # contact sheet panels are at most this tall, whatever the canvas
COLUMNS = 4


def _failed_panel(width: int, height: int, text: str) -> np.ndarray:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    panel = Image.new("RGB", (width, height), (70, 24, 24))
    ImageDraw.Draw(panel).text((6, 6), text, fill=(240, 200, 200), font=ImageFont.load_default())
    return np.asarray(panel)


def write_contact_sheet(reports: list[ShotReport], out_dir: Path, width: int, height: int) -> Path | None:
    """Done shots in order, failed ones as red placeholders, each labelled with its name and frame range."""
    import numpy as np
    from PIL import Image

    from .contact_sheet import contact_sheet
    from .images import save_png

    scale = min(1.0, THUMB_HEIGHT / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    panels = []
    for report in reports:
        if report.status in ("done", "kept") and report.file is not None:
            with Image.open(out_dir / report.file) as image:
                pixels = np.asarray(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))
        elif report.status == "failed":
            pixels = _failed_panel(*size, "failed")
        else:
            continue
        limit = max(8, size[0] // 5)  # about what fits under a panel in the default font
        label = report.label if len(report.label) <= limit else report.label[: limit - 1] + "…"
        panels.append((label, pixels))
    if not panels:
        return None
    path = out_dir / "contact_sheet.png"
    save_png(path, contact_sheet(panels, columns=min(COLUMNS, len(panels))))
    return path


def write_report(board: Storyboard, reports: list[ShotReport], out_dir: Path, device: torch.device) -> Path:
    from .images import atomic_write_bytes

    data = {
        "name": board.name,
        "width": board.width,
        "height": board.height,
        "steps": board.steps,
        "device": str(device),
        "seconds": round(sum(r.seconds for r in reports if r.status in ("done", "failed")), 3),
        "shots": [asdict(report) for report in reports],
    }
    path = out_dir / "storyboard.json"
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())
    return path


def render_storyboard(
    board: Storyboard,
    source: ImageSource,
    out_dir: Path,
    device: torch.device,
    only: list[str] | None = None,
    on_shot: Callable[[ShotReport], None] | None = None,
    progress_for: Callable[[int, Shot], Callable[[Progress], None] | None] | None = None,
) -> list[ShotReport]:
    """Render the selected shots (all by default) in this process, one after another, into out_dir:
    shots/NNN_<name>.png, contact_sheet.png and storyboard.json. The feature net, the CLIP model and the style
    statistics are built once and shared by every shot. Shared problems (preset, style images, CLIP model,
    output folder) raise SpecErrors before any shot runs; a shot's own failure is in its report."""
    from .images import save_png

    selected = set(select_shots(board, only))
    check_shared(board, source)
    check_outputs(board, source, out_dir)
    previous = _previous_reports(out_dir) if only else {}
    (out_dir / "shots").mkdir(parents=True, exist_ok=True)
    reports = []
    for index in range(len(board.shots)):
        if index not in selected:
            reports.append(_skipped(board, index, out_dir, previous))
            continue
        shot = board.shots[index]
        report, image = render_shot(board, index, source, device, progress_for(index, shot) if progress_for else None)
        if image is not None:
            report.file = shot_file(index, shot.name)
            save_png(out_dir / report.file, image)
        reports.append(report)
        if on_shot is not None:
            on_shot(report)
    write_contact_sheet(reports, out_dir, board.width, board.height)
    write_report(board, reports, out_dir, device)
    return reports


def validate_storyboard_file(path: Path) -> Storyboard:
    """Everything `storyboard --validate` checks: the file, the shared parts, and every shot prepared on the
    CPU (its images loaded and checked) without running a step. Raises SpecErrors naming storyboard fields."""
    import torch

    from .job import prepare_job
    from .refs import FolderSource

    board = load_storyboard_file(path)
    source = FolderSource(path.parent)
    check_shared(board, source)
    problems: list[SpecError] = []
    for index in range(len(board.shots)):
        try:
            prepare_job(shot_spec(board, index), source, torch.device("cpu"))
        except RegiaError as exc:
            errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
            problems += [
                SpecError(job_field(board, index, e.field), e.detail, e.value, e.allowed)
                for e in errors
                if isinstance(e, SpecError)
            ]
    if problems:
        raise SpecErrors(problems)
    return board
