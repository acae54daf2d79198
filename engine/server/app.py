"""The engine server's app (docs/server-api.md): its state on the data dir, its routes, error answers and guards.

- routes_health.py, routes_blobs.py, routes_jobs.py, routes_segment.py: the endpoints;
- admission.py: what a spec must pass to be queued; bodies.py: reading request bodies;
- handlers.py: error answers; openapi.py: the OpenAPI document;
- guards.py (requests a web page could make), auth.py (the token), protocol.py (slow clients, the connection cap),
  datadir.py (one server per data dir, private files, leftovers of a crash).

Handlers that only read memory are `async`; those that touch files or decode images are plain functions (FastAPI
runs them in its threadpool) or hand that work to it, so the event loop stays free and status polls stay fast
while a job runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..device import describe, pick_device
from .admission import configured_models
from .auth import BearerAuth
from .blobs import BlobSource, BlobStore
from .config import ServerConfig
from .datadir import DataDirLock, make_private, remove_stale
from .guards import RequestGuard
from .handlers import install_error_handlers
from .jobs import JobStore
from .logs import JsonLog, RequestLog
from .openapi import openapi_document
from .routes_blobs import router as blob_routes
from .routes_health import router as health_routes
from .routes_jobs import router as job_routes
from .routes_segment import router as segment_routes
from .worker import Worker


def _about(config: ServerConfig, device: torch.device) -> dict[str, Any]:
    """What /health says that does not change while the server runs."""
    image_limits = config.image_limits
    return {
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


def _open_data_dir(config: ServerConfig, log: JsonLog | None) -> JsonLog:
    """The data dir made private and cleared of a crash's leftovers; its log."""
    fixed = make_private(config.data_dir)
    log = log or JsonLog(config.data_dir / "server.log")
    for line in fixed:
        log.write("permissions", message=line)
    stale = remove_stale(config.data_dir)
    if stale:
        log.write("cleanup", message=f"removed {stale} half-made files and folders left by an earlier crash")
    return log


def _log_missing_models(config: ServerConfig, log: JsonLog) -> None:
    if config.diffusion:
        from ..diffusion.weights import check_diffusion_available

        for weights in config.diffusion:
            problem = check_diffusion_available(weights)
            if problem is not None:
                log.write("model missing", model=weights, error=str(problem))
    if config.clip:  # open_clip loads here, at start, not inside the first /health request
        from ..models import check_clip_available

        for name, weights in configured_models(config):
            problem = check_clip_available(name, weights, allow_download=False)
            if problem is not None:
                log.write("model missing", model=f"{name}:{weights}", error=str(problem))


def _add_middleware(app: FastAPI, config: ServerConfig, log: JsonLog) -> None:
    """The last added runs first: the request log, CORS for allowed origins, the token, the web-page guard."""
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


def _worker(config: ServerConfig, jobs: JobStore, source: BlobSource, device: torch.device, log: JsonLog) -> Worker:
    """Jobs run in this process, or on the engine actors of a Ray cluster (--ray; Ray is imported only then)."""

    def after_job() -> None:
        jobs.prune(config.keep_jobs, config.keep_days)

    if config.ray is None:
        return Worker(jobs, source, device, log, after_job=after_job)
    from .ray_worker import RayWorker

    return RayWorker(jobs, source, config, log, after_job=after_job)


def create_app(config: ServerConfig, log: JsonLog | None = None, lock: DataDirLock | None = None) -> FastAPI:
    """The app on its data dir. Without `lock`, it takes the data dir's lock itself (DataDirInUse when another
    server holds it); the lock is let go when the app shuts down."""
    lock = lock or DataDirLock(config.data_dir).acquire()
    log = _open_data_dir(config, log)
    device = pick_device(config.device)
    jobs = JobStore(config.data_dir / "jobs", log)
    jobs.recover()
    jobs.prune(config.keep_jobs, config.keep_days)
    blobs = BlobStore(config.data_dir / "blobs", config.image_limits)
    source = BlobSource(blobs)
    worker = _worker(config, jobs, source, device, log)
    _log_missing_models(config, log)

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
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: routes_health serves /docs whole from here
        redoc_url=None,
    )
    state = app.state
    state.config, state.jobs, state.blobs, state.source, state.worker, state.log = (
        config,
        jobs,
        blobs,
        source,
        worker,
        log,
    )
    state.about = {**_about(config, device), **worker.about()}
    install_error_handlers(app, log)
    for router in (health_routes, blob_routes, job_routes, segment_routes):
        app.include_router(router)
    _add_middleware(app, config, log)
    app.openapi = lambda: openapi_document(app, config)  # type: ignore[method-assign]
    return app
