"""The HTTP API of docs/server-api.md: routes, error bodies, limits, and the OpenAPI document.

Handlers that only read memory are `async`; those that touch files or decode images are plain
functions (FastAPI runs them in its threadpool) or hand that work to it, so the event loop stays
free and status polls stay fast while a job runs.

What guards the routes lives beside them: guards.py (requests a web page could make), auth.py (the token),
protocol.py (slow clients, the connection cap), datadir.py (one server per data dir, private files).
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..device import describe, pick_device
from ..errors import SpecError, SpecErrors
from ..job import check_capabilities  # prepare_job's own check, no images needed
from ..presets import apply_preset
from ..runtime import offline
from ..spec import JobSpec, validate_spec
from ..strict_json import DuplicateKey, loads_strict
from .auth import BearerAuth
from .blobs import HEX_ALLOWED, BlobSource, BlobStore, valid_name
from .config import ServerConfig, split_model_arg
from .datadir import DataDirLock, make_private, remove_stale
from .docs_page import docs_html
from .errors import ApiError, body, item, spec_items
from .guards import RequestGuard, media_type
from .jobs import MAX_PAGE_SIZE, PAGE_SIZE, STATES, JobStore, disk_full
from .logs import JsonLog, RequestLog
from .schemas import BlobStored, ErrorBody, Health, JobList, JobStatus
from .worker import Worker

ERROR = {"model": ErrorBody}
PNG = {"content": {"image/png": {}}, "description": "a PNG image"}


def errors_response(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(errors), status_code=status, headers=headers)


async def read_body(request: Request, limit: int, option: str, idle_timeout: float) -> bytes:
    """The body, refused (413) by its declared length or as soon as it grows past the limit, and dropped (408) when
    it pauses longer than `idle_timeout` seconds between pieces (a client dribbling its body)."""

    def too_large(size: str) -> ApiError:
        return ApiError.one(
            413, "(body)", "the body is over this server's size limit", size, f"at most {limit} bytes ({option})"
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(f"{declared} bytes")
    chunks, size = [], 0
    pieces = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await anext(pieces)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ApiError.one(
                408, "(body)", f"the body stopped arriving for {idle_timeout:g} seconds", allowed="send it whole"
            ) from None
        size += len(chunk)
        if size > limit:  # chunked, or a Content-Length that lied
            raise too_large(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return loads_strict(raw)
    except DuplicateKey as exc:
        raise ApiError.one(400, "(body)", str(exc), exc.key, "each key once per object") from None
    except ValueError as exc:  # JSONDecodeError, a body that is not UTF-8, a number with thousands of digits
        raise ApiError.one(400, "(body)", f"not JSON this server reads: {str(exc)[:160]}") from None
    except RecursionError:
        raise ApiError.one(400, "(body)", "not JSON this server reads: nested too deeply") from None


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


def disk_full_response(exc: OSError) -> JSONResponse:
    """507: the engine's disk is full. Nothing half-made was kept; the same request can be sent again later."""
    where = f" ({exc.filename})" if exc.filename else ""
    return errors_response(
        507,
        [
            item(
                "(server)",
                f"no space left on device{where}: the engine's disk is full; nothing was stored",
                allowed="free space on the engine's disk (or delete old jobs), then send it again",
            )
        ],
    )


def create_app(config: ServerConfig, log: JsonLog | None = None, lock: DataDirLock | None = None) -> FastAPI:
    """The app on its data dir. Without `lock`, it takes the data dir's lock itself (DataDirInUse when another
    server holds it); the lock is let go when the app shuts down."""
    lock = lock or DataDirLock(config.data_dir).acquire()
    fixed = make_private(config.data_dir)
    log = log or JsonLog(config.data_dir / "server.log")
    for line in fixed:
        log.write("permissions", message=line)
    stale = remove_stale(config.data_dir)
    if stale:
        log.write("cleanup", message=f"removed {stale} half-made files and folders left by an earlier crash")
    device = pick_device(config.device)
    blobs = BlobStore(config.data_dir / "blobs", config.image_limits)
    jobs = JobStore(config.data_dir / "jobs", log)
    jobs.recover()
    jobs.prune(config.keep_jobs, config.keep_days)
    source = BlobSource(blobs)
    worker = Worker(jobs, source, device, log, after_job=lambda: jobs.prune(config.keep_jobs, config.keep_days))
    image_limits = config.image_limits
    about = {
        "version": __version__,
        "device": describe(device),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
        "limits": {
            "max_side": config.max_side,
            "max_regions": config.max_regions,
            "max_blob_bytes": config.max_blob_bytes,
            "max_image_side": image_limits.max_side,
            "max_image_pixels": image_limits.max_pixels,
            "max_connections": config.max_connections,
            "header_timeout_seconds": config.header_timeout,
            "keep_jobs": config.keep_jobs,
            "keep_days": config.keep_days,
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
            lock.release()

    app = FastAPI(
        title="Regia engine",
        version=__version__,
        description="Region-guided image generation: upload PNG blobs, submit job specs, poll, fetch results.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: /docs below is served whole from here
        redoc_url=None,
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

    @app.exception_handler(OSError)  # handled here, not by the catch-all: that one re-raises into uvicorn
    async def on_os_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OSError)
        if disk_full(exc):
            log.write("disk full", path=request.url.path, error=str(exc))
            return disk_full_response(exc)
        return await on_crash(request, exc)

    # ---- routes ----------------------------------------------------------------------------

    @app.get("/health", response_model=None, responses={200: {"model": Health}})
    async def health() -> JSONResponse:
        return JSONResponse(
            {
                **about,
                "offline": offline(),
                "downloads": config.allow_downloads,
                "models": models_report(config),
                "queue": jobs.counts(),
            }
        )

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(
            docs_html(app.openapi()),
            headers={"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'"},
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
        data = await read_body(request, config.max_blob_bytes, "--max-blob-mb", config.body_timeout)
        created = await run_in_threadpool(blobs.put, sha256, data)
        return JSONResponse({"blob": f"blob:{sha256}", "size": len(data)}, status_code=201 if created else 200)

    @app.head("/blobs/{sha256}", response_model=None, responses={200: {"description": "stored"}, 404: ERROR})
    def head_blob(sha256: str) -> Response:
        size = blobs.size_of(sha256)  # 0 when missing, or damaged (then removed, so an upload repairs it)
        if not size:
            raise ApiError.one(404, "sha256", "no blob with this sha256", sha256)
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
            if not limited:
                problems += canvas_size_problems(spec, source)
            problems += runnable_problems(spec, config)
        if problems:
            raise ApiError(422, spec_items(SpecErrors(problems)))
        assert spec is not None
        return jobs.create(spec.to_json(), spec.steps)

    @app.post(
        "/jobs",
        status_code=202,
        response_model=None,
        responses={202: {"model": JobStatus}, 400: ERROR, 413: ERROR, 415: ERROR, 422: ERROR},
    )
    async def submit(request: Request) -> JSONResponse:
        kind = media_type(request.headers.get("content-type", ""))
        if kind != "application/json":
            raise ApiError.one(415, "Content-Type", "a job spec is sent as JSON", kind or None, "application/json")
        data = parse_json(await read_body(request, config.max_spec_bytes, "a job spec", config.body_timeout))
        status = await run_in_threadpool(admit, data)
        return JSONResponse(status, status_code=202, headers={"location": f"/jobs/{status['id']}"})

    @app.get("/jobs", response_model=None, responses={200: {"model": JobList}, 422: ERROR})
    async def list_jobs(limit: int = PAGE_SIZE, after: str | None = None, state: str | None = None) -> JSONResponse:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ApiError.one(422, "limit", "out of range", limit, f"1 to {MAX_PAGE_SIZE}")
        if after is not None and not after.isdigit():
            raise ApiError.one(422, "after", "not a cursor", after, "the `next` value of the previous page")
        states = set(state.split(",")) if state else None
        if states is not None and not states <= set(STATES):
            raise ApiError.one(422, "state", "unknown state", state, ", ".join(STATES))
        page, cursor = jobs.page(limit, int(after) if after else None, states)
        return JSONResponse({"jobs": page, "next": cursor})

    @app.get("/jobs/{id}", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR})
    async def get_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.status(id))  # straight from memory: no encoder pass, no disk

    @app.get("/jobs/{id}/preview", response_class=Response, responses={200: PNG, 404: ERROR})
    def get_preview(id: str) -> Response:
        names = ("result.png", "preview.png") if jobs.state(id) == "done" else ("preview.png",)
        for name in names:
            try:
                data = jobs.read_file(id, name)  # whole: every file is renamed into place
            except OSError:  # not there yet, or not a plain file (a link is never followed)
                continue
            return Response(data, media_type="image/png", headers={"cache-control": "no-store"})
        raise ApiError.one(404, "id", "no preview yet: the first comes after the first step", id)

    @app.get("/jobs/{id}/result", response_class=Response, responses={200: PNG, 404: ERROR, 409: ERROR})
    def get_result(id: str) -> Response:
        state = jobs.state(id)
        if state != "done":
            raise ApiError.one(409, "id", f"the job is {state}: a result exists once it is done", state, "done")
        try:
            data = jobs.read_file(id, "result.png")
        except OSError:
            raise ApiError.one(404, "id", "the result file has been removed from the data folder", id) from None
        return Response(data, media_type="image/png")

    @app.post("/jobs/{id}/cancel", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR, 409: ERROR})
    def cancel_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.cancel(id))

    @app.delete("/jobs/{id}", status_code=204, response_class=Response, responses={404: ERROR, 409: ERROR})
    def delete_job(id: str) -> Response:
        jobs.delete(id)
        return Response(status_code=204)

    @app.post(
        "/jobs/{id}/requeue",
        status_code=202,
        response_model=None,
        responses={202: {"model": JobStatus}, 404: ERROR, 409: ERROR},
    )
    def requeue_job(id: str) -> JSONResponse:
        return JSONResponse(jobs.requeue(id), status_code=202)

    # ---- middleware: the last added runs first -------------------------------------------

    app.add_middleware(RequestGuard, config=config)  # after the token: a request without it is a 401 first
    if config.token:
        app.add_middleware(BearerAuth, token=config.token)
    if config.allow_origins:  # answers those origins' preflights, before the token is asked for
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.allow_origins),
            allow_methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
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
