"""The HTTP API of docs/server-api.md: routes, error bodies, limits, and the OpenAPI document.

Handlers that only read memory are `async`; those that touch files or decode images are plain
functions (FastAPI runs them in its threadpool) or hand that work to it, so the event loop stays
free and status polls stay fast while a job runs.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..device import describe, pick_device
from ..errors import SpecError, SpecErrors
from ..job import check_capabilities  # prepare_job's own check, no images needed
from ..presets import apply_preset
from ..spec import JobSpec, validate_spec
from .auth import BearerAuth
from .blobs import HEX_ALLOWED, BlobSource, BlobStore, valid_name
from .config import ServerConfig, split_model_arg
from .errors import ApiError, body, item, spec_items
from .jobs import JobStore
from .logs import JsonLog, RequestLog
from .schemas import BlobStored, ErrorBody, Health, JobList, JobStatus
from .worker import Worker

ERROR = {"model": ErrorBody}
PNG = {"content": {"image/png": {}}, "description": "a PNG image"}


def errors_response(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(errors), status_code=status, headers=headers)


async def read_body(request: Request, limit: int, option: str) -> bytes:
    """The body, refused (413) by its declared length or as soon as it grows past the limit."""

    def too_large(size: str) -> ApiError:
        return ApiError.one(
            413, "(body)", "the body is over this server's size limit", size, f"at most {limit} bytes ({option})"
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"{declared} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # chunked, or a Content-Length that lied
            raise too_large(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError.one(400, "(body)", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise ApiError.one(400, "(body)", "not JSON: the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # e.g. a number with thousands of digits, nesting too deep
        raise ApiError.one(400, "(body)", f"not JSON this server reads: {str(exc)[:120]}") from None


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


def models_report(config: ServerConfig) -> dict[str, list[str]]:
    """The configured models and those loaded in this process, each present or missing: a cache lookup and a
    file check each, no loading and no network."""
    pairs = configured_models(config)
    if "engine.models" in sys.modules:  # loaded ones exist only once a CLIP job has imported it
        from ..models import loaded_models

        pairs += [split_model_arg(label) for label in loaded_models()]
    report: dict[str, list[str]] = {"present": [], "missing": []}
    if not pairs:
        return report
    from ..models import check_clip_available

    for name, weights in dict.fromkeys(pairs):
        available = check_clip_available(name, weights, allow_download=False) is None
        report["present" if available else "missing"].append(f"{name}:{weights}")
    return report


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


def runnable_problems(spec: JobSpec, config: ServerConfig) -> list[SpecError]:
    """What this engine cannot run (an unknown preset, CLIP guides without their weights, keep without init), as
    `python -m engine validate` reports it: refused at submission instead of failing later.
    Cheap checks only; what needs the images decoded (an empty mask, a size) fails the job."""
    try:
        resolved = apply_preset(spec)
    except SpecError as exc:
        return [exc]
    refused = client_path_problem(resolved, config)
    if refused is not None:
        return [refused]
    try:
        check_capabilities(resolved)
    except SpecErrors as exc:
        return list(exc.errors)
    return []


def create_app(config: ServerConfig, log: JsonLog | None = None) -> FastAPI:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log = log or JsonLog(config.data_dir / "server.log")
    device = pick_device(config.device)
    blobs = BlobStore(config.data_dir / "blobs")
    jobs = JobStore(config.data_dir / "jobs", log)
    jobs.recover()
    source = BlobSource(blobs)
    worker = Worker(jobs, source, device, log)
    about = {
        "version": __version__,
        "device": describe(device),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "limits": {
            "max_side": config.max_side,
            "max_regions": config.max_regions,
            "max_blob_bytes": config.max_blob_bytes,
        },
    }

    if config.clip:  # open_clip loads here, at start, not inside the first /health request
        from ..models import check_clip_available

        for name, weights in configured_models(config):
            problem = check_clip_available(name, weights, allow_download=False)
            if problem is not None:
                log.write("model missing", model=f"{name}:{weights}", error=str(problem))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    app = FastAPI(
        title="Regia engine",
        version=__version__,
        description="Region-guided image generation: upload PNG blobs, submit job specs, poll, fetch results.",
        lifespan=lifespan,
    )
    app.state.config, app.state.jobs, app.state.blobs, app.state.worker, app.state.log = (
        config,
        jobs,
        blobs,
        worker,
        log,
    )

    # ---- errors: always {"errors": [...]}, never a traceback ------------------------------

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return errors_response(exc.status, exc.errors, exc.headers)

    @app.exception_handler(SpecErrors)
    @app.exception_handler(SpecError)
    async def on_spec_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, (SpecError, SpecErrors))
        return errors_response(422, spec_items(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field, message = {
            404: ("(path)", "no such endpoint (see /openapi.json)"),
            405: ("(method)", f"{request.method} is not allowed here"),
        }.get(exc.status_code, ("(request)", str(exc.detail)))
        return errors_response(exc.status_code, [item(field, message, request.url.path)], exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        found = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            field = "(body)" if not loc or (loc[0] == "body" and len(loc) == 1) else loc[-1]
            found.append(item(field, str(error.get("msg", "invalid"))))
        return errors_response(422, found or [item("(request)", "invalid request")])

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.write("error", path=request.url.path, traceback=traceback.format_exc())
        return errors_response(500, [item("(server)", "internal error; the details are in server.log")])

    # ---- routes ----------------------------------------------------------------------------

    @app.get("/health", response_model=None, responses={200: {"model": Health}})
    async def health() -> JSONResponse:
        return JSONResponse(
            {**about, "offline": config.offline, "models": models_report(config), "queue": jobs.counts()}
        )

    @app.put(
        "/blobs/{sha256}",
        status_code=201,
        response_model=None,
        responses={
            200: {"model": BlobStored},
            201: {"model": BlobStored},
            400: ERROR,
            413: ERROR,
            415: ERROR,
            422: ERROR,
        },
    )
    async def put_blob(sha256: str, request: Request) -> JSONResponse:
        if not valid_name(sha256):
            raise ApiError.one(422, "sha256", "not a blob name", sha256, HEX_ALLOWED)
        data = await read_body(request, config.max_blob_bytes, "--max-blob-mb")
        created = await run_in_threadpool(blobs.put, sha256, data)
        return JSONResponse({"blob": f"blob:{sha256}", "size": len(data)}, status_code=201 if created else 200)

    @app.head("/blobs/{sha256}", response_model=None, responses={200: {"description": "stored"}, 404: ERROR})
    def head_blob(sha256: str) -> Response:
        if not blobs.has(sha256):
            raise ApiError.one(404, "sha256", "no blob with this sha256", sha256)
        size = blobs.path(sha256).stat().st_size
        return Response(status_code=200, media_type="image/png", headers={"content-length": str(size)})

    def admit(data: Any) -> dict[str, Any]:
        spec, problems = None, []
        try:
            spec = validate_spec(data)
        except SpecErrors as exc:
            problems = list(exc.errors)
        limited = limit_problems(spec, data, config)
        problems = [p for p in problems if p.field not in {q.field for q in limited}] + limited
        if spec is not None:
            problems += [p for field, ref in spec.image_refs() if (p := source.problem(ref, field)) is not None]
            problems += runnable_problems(spec, config)
        if problems:
            raise ApiError(422, spec_items(SpecErrors(problems)))
        assert spec is not None
        return jobs.create(spec.to_json(), spec.steps)

    @app.post(
        "/jobs",
        status_code=202,
        response_model=None,
        responses={202: {"model": JobStatus}, 400: ERROR, 413: ERROR, 422: ERROR},
    )
    async def submit(request: Request) -> JSONResponse:
        data = parse_json(await read_body(request, config.max_spec_bytes, "a job spec"))
        status = await run_in_threadpool(admit, data)
        return JSONResponse(status, status_code=202, headers={"location": f"/jobs/{status['id']}"})

    @app.get("/jobs", response_model=None, responses={200: {"model": JobList}})
    async def list_jobs() -> JSONResponse:
        return JSONResponse({"jobs": jobs.statuses()})

    @app.get("/jobs/{id}", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR})
    async def get_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.status(id))  # straight from memory: no encoder pass, no disk

    @app.get("/jobs/{id}/preview", response_class=Response, responses={200: PNG, 404: ERROR})
    def get_preview(id: str) -> Response:
        names = ("result.png", "preview.png") if jobs.state(id) == "done" else ("preview.png",)
        for name in names:
            try:
                data = (jobs.folder(id) / name).read_bytes()  # whole: every file is renamed into place
            except FileNotFoundError:
                continue
            return Response(data, media_type="image/png", headers={"cache-control": "no-store"})
        raise ApiError.one(404, "id", "no preview yet: the first comes after the first step", id)

    @app.get("/jobs/{id}/result", response_class=Response, responses={200: PNG, 404: ERROR, 409: ERROR})
    def get_result(id: str) -> Response:
        state = jobs.state(id)
        if state != "done":
            raise ApiError.one(409, "id", f"the job is {state}: a result exists once it is done", state, "done")
        try:
            data = (jobs.folder(id) / "result.png").read_bytes()
        except FileNotFoundError:
            raise ApiError.one(404, "id", "the result file has been removed from the data folder", id) from None
        return Response(data, media_type="image/png")

    @app.post("/jobs/{id}/cancel", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR, 409: ERROR})
    def cancel_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.cancel(id))

    @app.post(
        "/jobs/{id}/requeue",
        status_code=202,
        response_model=None,
        responses={202: {"model": JobStatus}, 404: ERROR, 409: ERROR},
    )
    def requeue_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.requeue(id), status_code=202)

    # ---- middleware: the last added runs first -------------------------------------------

    if config.token:
        app.add_middleware(BearerAuth, token=config.token)
    app.add_middleware(RequestLog, log=log)

    app.openapi = lambda: _openapi(app, config)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, config: ServerConfig) -> dict[str, Any]:
    """FastAPI's document, plus the job spec's schema (with this server's limits) and the token scheme."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    spec_schema = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in spec_schema.pop("$defs", {}).items():
        if name in components and components[name] != definition:  # pragma: no cover - a naming slip
            raise RuntimeError(f"OpenAPI schema name clash: {name}")
        components[name] = definition
    properties = spec_schema["properties"]
    for side in ("width", "height"):
        properties[side]["maximum"] = min(properties[side].get("maximum", config.max_side), config.max_side)
    properties["regions"]["maxItems"] = min(
        properties["regions"].get("maxItems", config.max_regions), config.max_regions
    )
    components["JobSpec"] = spec_schema
    paths = schema["paths"]
    paths["/jobs"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
    }
    paths["/blobs/{sha256}"]["put"]["requestBody"] = {
        "required": True,
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
    if config.token:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
    app.openapi_schema = schema
    return schema
