"""PUT, GET and HEAD /blobs/{sha256}: content-addressed PNG uploads, checked whole and within the image limits; GET
also returns what the engine stored itself (a segmentation's region map)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .blobs import HEX_ALLOWED, valid_name
from .bodies import read_body
from .errors import ApiError
from .schemas import ERROR, PNG, BlobStored

router = APIRouter()


@router.put(
    "/blobs/{sha256}",
    status_code=201,
    response_model=None,
    responses={200: {"model": BlobStored}, 201: {"model": BlobStored}, 400: ERROR, 413: ERROR, 415: ERROR, 422: ERROR},
)
async def put_blob(sha256: str, request: Request) -> JSONResponse:
    if not valid_name(sha256):
        raise ApiError.one(422, "sha256", "not a blob name", sha256, HEX_ALLOWED)
    config, blobs = request.app.state.config, request.app.state.blobs
    data = await read_body(request, config.max_blob_bytes, "--max-blob-mb", config.body_timeout)
    created = await run_in_threadpool(blobs.put, sha256, data)
    return JSONResponse({"blob": f"blob:{sha256}", "size": len(data)}, status_code=201 if created else 200)


@router.get("/blobs/{sha256}", response_class=Response, responses={200: PNG, 404: ERROR, 422: ERROR})
def get_blob(sha256: str, request: Request) -> Response:
    if not valid_name(sha256):
        raise ApiError.one(422, "sha256", "not a blob name", sha256, HEX_ALLOWED)
    blobs = request.app.state.blobs
    if not blobs.size_of(sha256):  # missing, or damaged (then removed)
        raise ApiError.one(404, "sha256", "no blob with this sha256", sha256)
    return Response(blobs.read(sha256), media_type="image/png")


@router.head("/blobs/{sha256}", response_model=None, responses={200: {"description": "stored"}, 404: ERROR})
def head_blob(sha256: str, request: Request) -> Response:
    size = request.app.state.blobs.size_of(sha256)  # 0 when missing, or damaged (then removed: an upload repairs it)
    if not size:
        raise ApiError.one(404, "sha256", "no blob with this sha256", sha256)
    return Response(status_code=200, media_type="image/png", headers={"content-length": str(size)})
