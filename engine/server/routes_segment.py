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
from .bodies import json_body
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
    data = await json_body(request, "a segment request")
    return JSONResponse(await run_in_threadpool(_segment, request, data))
