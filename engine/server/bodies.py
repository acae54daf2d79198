"""Request bodies: read whole within a size limit and a pause limit, and JSON with every key once."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from ..strict_json import DuplicateKey, loads_strict
from .errors import ApiError
from .guards import media_type


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


async def json_body(request: Request, what: str) -> Any:
    """A POST's JSON body (`what` says which, for errors): 415 unless it is application/json, the spec size limit,
    the body timeout, strict JSON."""
    kind = media_type(request.headers.get("content-type", ""))
    if kind != "application/json":
        raise ApiError.one(415, "Content-Type", f"{what} is sent as JSON", kind or None, "application/json")
    config = request.app.state.config
    return parse_json(await read_body(request, config.max_spec_bytes, what, config.body_timeout))
