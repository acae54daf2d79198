"""Rendering a storyboard in one process: every shot (or those --only names), numbered shot PNGs, a contact sheet
and storyboard.json. The feature net, the CLIP model and the style statistics are loaded once for all shots.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JobCancelled, RegiaError, SpecError, SpecErrors
from .expand import ShotJobs
from .format import Shot, Storyboard, load_storyboard_file

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..progress import CancelToken, Progress
    from ..refs import ImageSource


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
    status: str = "pending"  # done, failed, cancelled, skipped, or kept (skipped by --only, its earlier image kept)
    seconds: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)  # the last step's, normalised and weighted
    error: str | None = None
    field: str | None = None  # the storyboard field a failure names

    @property
    def label(self) -> str:
        return f"{self.index:03d} {self.name}  [{self.frame_start}-{self.frame_end}]"


def _report(jobs: ShotJobs, index: int) -> ShotReport:
    shot = jobs.board.shots[index]
    return ShotReport(index + 1, shot.name, shot.frame_start, shot.frame_end, shot.description, jobs.seed(index))


def _used_refs(jobs: ShotJobs) -> list[tuple[str, str]]:
    """(storyboard field, ref) of every image a storyboard names."""
    refs = [(f"style.images[{i}]", ref) for i, ref in enumerate(jobs.board.style.images)]
    for index in range(len(jobs.board.shots)):
        refs += [(jobs.field(index, path), ref) for path, ref in jobs.spec(index).image_refs()]
    return refs


def check_shared(jobs: ShotJobs, source: ImageSource) -> None:
    """What every shot needs, checked once before any shot runs: the preset, the style images and the CLIP
    model. A problem here is the storyboard's, not one shot's, so nothing runs."""
    from ..job import clip_guides_used
    from ..presets import load_preset

    board = jobs.board
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
    if clip is not None and any(clip_guides_used(jobs.spec(i)) for i in range(len(board.shots))):
        from ..models import check_clip_available  # open_clip loads only for storyboards that use it

        missing = check_clip_available(clip.name, clip.weights)
        if missing is not None:
            problems.append(missing)
    if problems:
        raise SpecErrors(problems)


def _error_of(exc: Exception, jobs: ShotJobs, index: int) -> tuple[str, str | None]:
    """(one-line message, storyboard field) of a shot's failure."""
    if isinstance(exc, SpecErrors):
        errors = exc.errors
    elif isinstance(exc, SpecError):
        errors = [exc]
    else:
        first = (str(exc).splitlines() or [""])[0][:200]
        return f"{type(exc).__name__}: {first}", None
    mapped = jobs.errors(index, errors)
    return "; ".join(e.one_line() for e in mapped), mapped[0].field


def render_shot(
    jobs: ShotJobs,
    index: int,
    source: ImageSource,
    device: torch.device,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[ShotReport, np.ndarray | None]:
    """Run one shot as any job runs (engine.execute). A failure is reported (message, storyboard field), never
    raised, so that the other shots still run; only an interrupt or `cancel` (JobCancelled) stops everything."""
    from ..execute import execute

    report = _report(jobs, index)
    start = time.perf_counter()
    try:
        result = execute(jobs.spec(index), source, device, on_progress=on_progress, cancel=cancel)
    except JobCancelled:
        raise
    except Exception as exc:  # one bad shot (its own image, out of memory) must not stop the storyboard
        if device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        report.status = "failed"
        report.error, report.field = _error_of(exc, jobs, index)
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


def _skipped(jobs: ShotJobs, index: int, out_dir: Path, previous: dict[str, dict[str, Any]]) -> ShotReport:
    shot = jobs.board.shots[index]
    report = _report(jobs, index)
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


def check_outputs(jobs: ShotJobs, source: ImageSource, out_dir: Path) -> None:
    """Refuse an output folder where a written file would replace one of the storyboard's images."""
    path_of = getattr(source, "path_of", None)
    if path_of is None:  # blob sources have no paths to collide with
        return
    written = {(out_dir / name).resolve() for name in ("contact_sheet.png", "storyboard.json")}
    written |= {(out_dir / shot_file(i, shot.name)).resolve() for i, shot in enumerate(jobs.board.shots)}
    for field_path, ref in _used_refs(jobs):
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

    from ..contact_sheet import contact_sheet
    from ..images import save_png

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
        label = f"{report.label}\n{report.description}" if report.description.strip() else report.label
        panels.append((label, pixels))  # written whole: wrapped under the panel
    if not panels:
        return None
    path = out_dir / "contact_sheet.png"
    save_png(path, contact_sheet(panels, columns=min(COLUMNS, len(panels))))
    return path


def write_report(board: Storyboard, reports: list[ShotReport], out_dir: Path, device: torch.device) -> Path:
    from ..images import atomic_write_bytes

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


# A runner renders the given shots, in any order, and hands each to `deliver(index, report, image)` once.
Deliver = Callable[[int, "ShotReport", "np.ndarray | None"], None]
ShotRunner = Callable[[ShotJobs, list[int], Deliver], None]


def in_process(
    source: ImageSource,
    device: torch.device,
    progress_for: Callable[[int, Shot], Callable[[Progress], None] | None] | None = None,
) -> ShotRunner:
    """The shots one after another in this process (the feature net, CLIP model and style statistics shared)."""

    def run(jobs: ShotJobs, indices: list[int], deliver: Deliver) -> None:
        for index in indices:
            shot = jobs.board.shots[index]
            on_progress = progress_for(index, shot) if progress_for else None
            deliver(index, *render_shot(jobs, index, source, device, on_progress))

    return run


def render_storyboard(
    board: Storyboard,
    source: ImageSource,
    out_dir: Path,
    device: torch.device,
    only: list[str] | None = None,
    on_shot: Callable[[ShotReport], None] | None = None,
    progress_for: Callable[[int, Shot], Callable[[Progress], None] | None] | None = None,
    runner: ShotRunner | None = None,
) -> list[ShotReport]:
    """Render the selected shots (all by default) into out_dir: shots/NNN_<name>.png, contact_sheet.png and
    storyboard.json. `runner` renders them (in this process by default, one after another; engine/cluster runs
    them on Ray actors); whichever renders them, this process writes every file, each once. Shared problems
    (preset, style images, CLIP model, output folder) raise SpecErrors before any shot runs; a shot's own failure
    is in its report, and a shot the runner never delivered (cancelled) is reported as such."""
    from ..images import save_png

    selected = select_shots(board, only)
    jobs = ShotJobs(board)
    check_shared(jobs, source)
    check_outputs(jobs, source, out_dir)
    previous = _previous_reports(out_dir) if only else {}
    (out_dir / "shots").mkdir(parents=True, exist_ok=True)
    reports = {i: _skipped(jobs, i, out_dir, previous) for i in range(len(board.shots)) if i not in selected}

    def deliver(index: int, report: ShotReport, image: np.ndarray | None) -> None:
        if image is not None:
            report.file = shot_file(index, board.shots[index].name)
            save_png(out_dir / report.file, image)
        reports[index] = report
        if on_shot is not None:
            on_shot(report)

    (runner or in_process(source, device, progress_for))(jobs, selected, deliver)
    for index in selected:
        if index not in reports:
            reports[index] = _report(jobs, index)
            reports[index].status, reports[index].error = "cancelled", "cancelled before it finished"
    ordered = [reports[i] for i in range(len(board.shots))]
    write_contact_sheet(ordered, out_dir, board.width, board.height)
    write_report(board, ordered, out_dir, device)
    return ordered


def validate_storyboard_file(path: Path) -> Storyboard:
    """Everything `storyboard --validate` checks: the file, the shared parts, and every shot prepared on the
    CPU (its images loaded and checked) without running a step. Raises SpecErrors naming storyboard fields."""
    import torch

    from ..job import prepare_job
    from ..refs import FolderSource

    board = load_storyboard_file(path)
    source = FolderSource(path.parent)
    jobs = ShotJobs(board)
    check_shared(jobs, source)
    problems: list[SpecError] = []
    for index in range(len(board.shots)):
        try:
            prepare_job(jobs.spec(index), source, torch.device("cpu"))
        except RegiaError as exc:
            errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
            problems += jobs.errors(index, [e for e in errors if isinstance(e, SpecError)])
    if problems:
        raise SpecErrors(problems)
    return board
