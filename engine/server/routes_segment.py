"""POST /segment: an uploaded image split into parts (engine/segment.py), answered with the parts and a colour-key
region map stored as a blob (GET /blobs/{sha256} returns it)."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..images import png_bytes, to_rgb
from ..segment import SegmentRequest, segment
from ..spec import validate_model
from .bodies import parse_json, read_body
from .errors import ApiError
from .guards import media_type
from .schemas import ERROR, SegmentAnswer

router = APIRouter()


def _segment(request: Request, data: Any) -> dict[str, Any]:
    state = request.app.state
    asked: SegmentRequest = validate_model(SegmentRequest, data, "a segment request")
    pixels = to_rgb(state.source.open(asked.image, "image"))
    found = segment(pixels, asked.method, asked.parts)
    region_map = png_bytes(found.region_map())
    name = hashlib.sha256(region_map).hexdigest()
    state.blobs.put(name, region_map)
    height, width = pixels.shape[:2]
    return {
        "width": width,
        "height": height,
        "method": asked.method,
        "map": f"blob:{name}",
        "parts": [part.to_json() for part in found.parts],
    }


@router.post(
    "/segment",
    response_model=None,
    responses={200: {"model": SegmentAnswer}, 400: ERROR, 413: ERROR, 415: ERROR, 422: ERROR},
)
async def post_segment(request: Request) -> JSONResponse:
    kind = media_type(request.headers.get("content-type", ""))
    if kind != "application/json":
        raise ApiError.one(415, "Content-Type", "a segment request is sent as JSON", kind or None, "application/json")
    config = request.app.state.config
    data = parse_json(await read_body(request, config.max_spec_bytes, "a segment request", config.body_timeout))
    return JSONResponse(await run_in_threadpool(_segment, request, data))
