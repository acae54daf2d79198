"""What a job spec must pass before it is queued: the server's limits, its images (uploaded, whole, the right size
by their headers), and what this engine can run (preset, CLIP weights on this machine, no client paths)."""

from __future__ import annotations

from typing import Any

from ..errors import SpecError, SpecErrors
from ..job import check_capabilities  # prepare_job's own check, no images needed
from ..presets import apply_preset
from ..spec import JobSpec, validate_spec
from .blobs import BlobSource
from .config import ServerConfig, split_model_arg
from .errors import ApiError, spec_items


def limit_problems(spec: JobSpec | None, data: Any, config: ServerConfig) -> list[SpecError]:
    """Server limits, checked on the valid spec or, when it is invalid, on the raw values."""
    raw = data if isinstance(data, dict) else {}
    found = []
    for name in ("width", "height"):
        value = getattr(spec, name) if spec is not None else raw.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > config.max_side:
            found.append(
                SpecError(name, "over this server's size limit", value, f"at most {config.max_side} (--max-side)")
            )
    regions = spec.regions if spec is not None else raw.get("regions")
    if isinstance(regions, list) and len(regions) > config.max_regions:
        found.append(
            SpecError(
                "regions",
                f"{len(regions)} regions is over this server's limit",
                len(regions),
                f"at most {config.max_regions} regions (--max-regions)",
            )
        )
    return found


def configured_models(config: ServerConfig) -> list[tuple[str, str]]:
    """(name, weights) of every --clip, in order, without repeats."""
    return list(dict.fromkeys(split_model_arg(text) for text in config.clip))


def client_path_problem(spec: JobSpec, config: ServerConfig) -> SpecError | None:
    """No client string becomes a file-system path: a checkpoint path is taken only when this server was started
    with that very model (--clip NAME:PATH); it is refused before anything looks at the disk."""
    clip = spec.models.clip
    if clip is None:
        return None
    from ..models import weights_kind

    if weights_kind(clip.name, clip.weights) != "file" or (clip.name, clip.weights) in configured_models(config):
        return None
    files = [f"{n}:{w}" for n, w in configured_models(config) if weights_kind(n, w) == "file"]
    return SpecError(
        "models.clip.weights",
        "a checkpoint path sent over HTTP is taken only when the server was started with that model "
        "(--clip NAME:PATH); no client string becomes a file-system path",
        value=clip.weights,
        allowed="a pretrained tag in the server's model cache, 'random' (tests only)"
        + (f", or the configured {', '.join(files)}" if files else ""),
    )


def diffusion_path_problem(spec: JobSpec, config: ServerConfig) -> SpecError | None:
    """A diffusion model's path is taken over HTTP only when the server was started with it (--diffusion PATH);
    `random:<config>` needs no path."""
    model = spec.models.diffusion
    if model is None or model.weights.startswith("random:") or model.weights in config.diffusion:
        return None
    return SpecError(
        "models.diffusion.weights",
        "a diffusion model path sent over HTTP is taken only when the server was started with it "
        "(--diffusion PATH); no client string becomes a file-system path",
        value=model.weights,
        allowed=", ".join(config.diffusion) or "none configured: start the server with --diffusion PATH",
    )


def runnable_problems(spec: JobSpec, config: ServerConfig) -> list[SpecError]:
    """What this engine cannot run (an unknown preset, CLIP guides without their weights, keep without init), as
    `python -m engine validate` reports it: refused at submission instead of failing later.
    Cheap checks only; what needs the images decoded (an empty mask, a size) fails the job."""
    try:
        resolved = apply_preset(spec)
    except SpecError as exc:
        return [exc]
    refused = [p for p in (client_path_problem(resolved, config), diffusion_path_problem(resolved, config)) if p]
    if refused:
        return refused
    try:
        check_capabilities(resolved)
    except SpecErrors as exc:
        return list(exc.errors)
    return []


def canvas_size_problems(spec: JobSpec, source: BlobSource) -> list[SpecError]:
    """Canvas-sized images (init, masks, strokes) of another size, found from their PNG headers: refused at
    submission, before any pixel is decoded."""
    found = []
    for field, ref in spec.canvas_image_refs():
        if source.problem(ref, field) is not None:
            continue  # reported already
        try:
            width, height = source.size(ref, field)
        except SpecError as exc:
            found.append(exc)
            continue
        if (width, height) != (spec.width, spec.height):
            found.append(
                SpecError(
                    field,
                    f"the image is {width}x{height} but the canvas is {spec.width}x{spec.height}; it is not resized",
                    value=ref,
                    allowed=f"an image of exactly {spec.width}x{spec.height}",
                )
            )
    return found


def admission_problems(data: Any, config: ServerConfig, source: BlobSource) -> tuple[JobSpec | None, list[SpecError]]:
    """The valid spec (None when it is not) and every reason it cannot be queued, all at once."""
    spec, problems = None, []
    try:
        spec = validate_spec(data)
    except SpecErrors as exc:
        problems = list(exc.errors)
    limited = limit_problems(spec, data, config)
    problems = [p for p in problems if p.field not in {q.field for q in limited}] + limited
    if spec is not None:
        problems += [p for field, ref in spec.image_refs() if (p := source.problem(ref, field)) is not None]
        if not limited:
            problems += canvas_size_problems(spec, source)
        problems += runnable_problems(spec, config)
    return spec, problems


def admitted(data: Any, config: ServerConfig, source: BlobSource) -> JobSpec:
    """The spec, or ApiError 422 listing every problem."""
    spec, problems = admission_problems(data, config, source)
    if problems:
        raise ApiError(422, spec_items(SpecErrors(problems)))
    assert spec is not None
    return spec
