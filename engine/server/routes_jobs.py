"""The job endpoints: submit, list (paged), status, preview, result, cancel, requeue, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .admission import admitted
from .bodies import json_body
from .errors import ApiError
from .job_record import MAX_PAGE_SIZE, PAGE_SIZE, STATES
from .schemas import ERROR, PNG, JobList, JobStatus

router = APIRouter()


def _admit(request: Request, data: Any) -> dict[str, Any]:
    state = request.app.state
    spec = admitted(data, state.config, state.source)
    return state.jobs.create(spec.to_json(), spec.steps)


@router.post(
    "/jobs",
    status_code=202,
    response_model=None,
    responses={202: {"model": JobStatus}, 400: ERROR, 413: ERROR, 415: ERROR, 422: ERROR},
)
async def submit(request: Request) -> JSONResponse:
    data = await json_body(request, "a job spec")
    status = await run_in_threadpool(_admit, request, data)
    return JSONResponse(status, status_code=202, headers={"location": f"/jobs/{status['id']}"})


@router.get("/jobs", response_model=None, responses={200: {"model": JobList}, 422: ERROR})
async def list_jobs(
    request: Request, limit: int = PAGE_SIZE, after: str | None = None, state: str | None = None
) -> JSONResponse:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ApiError.one(422, "limit", "out of range", limit, f"1 to {MAX_PAGE_SIZE}")
    if after is not None and not after.isdigit():
        raise ApiError.one(422, "after", "not a cursor", after, "the `next` value of the previous page")
    states = set(state.split(",")) if state else None
    if states is not None and not states <= set(STATES):
        raise ApiError.one(422, "state", "unknown state", state, ", ".join(STATES))
    page, cursor = request.app.state.jobs.page(limit, int(after) if after else None, states)
    return JSONResponse({"jobs": page, "next": cursor})


@router.get("/jobs/{id}", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR})
async def get_job(id: str, request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.jobs.status(id))  # straight from memory: no encoder pass, no disk


@router.get("/jobs/{id}/preview", response_class=Response, responses={200: PNG, 404: ERROR})
def get_preview(id: str, request: Request) -> Response:
    jobs = request.app.state.jobs
    names = ("result.png", "preview.png") if jobs.state(id) == "done" else ("preview.png",)
    for name in names:
        try:
            data = jobs.read_file(id, name)  # whole: every file is renamed into place
        except OSError:  # not there yet, or not a plain file (a link is never followed)
            continue
        return Response(data, media_type="image/png", headers={"cache-control": "no-store"})
    raise ApiError.one(404, "id", "no preview yet: the first comes after the first step", id)


@router.get("/jobs/{id}/result", response_class=Response, responses={200: PNG, 404: ERROR, 409: ERROR})
def get_result(id: str, request: Request) -> Response:
    jobs = request.app.state.jobs
    state = jobs.state(id)
    if state != "done":
        raise ApiError.one(409, "id", f"the job is {state}: a result exists once it is done", state, "done")
    try:
        data = jobs.read_file(id, "result.png")
    except OSError:
        raise ApiError.one(404, "id", "the result file has been removed from the data folder", id) from None
    return Response(data, media_type="image/png")


@router.post("/jobs/{id}/cancel", response_model=None, responses={200: {"model": JobStatus}, 404: ERROR, 409: ERROR})
def cancel_job(id: str, request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.jobs.cancel(id))


@router.delete("/jobs/{id}", status_code=204, response_class=Response, responses={404: ERROR, 409: ERROR})
def delete_job(id: str, request: Request) -> Response:
    request.app.state.jobs.delete(id)
    return Response(status_code=204)


@router.post(
    "/jobs/{id}/requeue",
    status_code=202,
    response_model=None,
    responses={202: {"model": JobStatus}, 404: ERROR, 409: ERROR},
)
def requeue_job(id: str, request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.jobs.requeue(id), status_code=202)
