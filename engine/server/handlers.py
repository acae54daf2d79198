"""Error answers: always {"errors": [...]} with the right status, never a traceback (that goes to server.log)."""

from __future__ import annotations

import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SpecError, SpecErrors
from .errors import ApiError, body, item, spec_items
from .job_record import disk_full
from .logs import JsonLog


def errors_response(status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(errors), status_code=status, headers=headers)


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


def install_error_handlers(app: FastAPI, log: JsonLog) -> None:
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
