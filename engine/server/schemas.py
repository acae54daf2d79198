"""Response shapes, for the OpenAPI document only: handlers answer with plain dicts from memory."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ErrorItem(BaseModel):
    field: str
    message: str
    value: str | None
    allowed: str | None


class ErrorBody(BaseModel):
    errors: list[ErrorItem]


class JobStatus(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    step: int
    steps: int
    fraction: float
    elapsed_seconds: float
    eta_seconds: float | None
    losses: dict[str, float | None]
    total_loss: float | None
    error: str | None
    cancel_requested: bool
    queue_position: int | None
    created: str
    started: str | None
    finished: str | None


class JobList(BaseModel):
    jobs: list[JobStatus]
    next: str | None  # the cursor of the next page (pass it as `after`), or null on the last page


class HealthModels(BaseModel):
    """NAME:WEIGHTS of the CLIP models given to `serve --clip` and of those loaded since the start."""

    present: list[str]
    missing: list[str]


class HealthLimits(BaseModel):
    max_side: int
    max_regions: int
    max_blob_bytes: int
    max_image_side: int
    max_image_pixels: int
    max_connections: int
    header_timeout_seconds: float
    keep_jobs: int
    keep_days: float


class QueueCounts(BaseModel):
    queued: int
    running: int


class HealthCluster(BaseModel):
    """Present only with `serve --ray`: jobs run on this many engine actors of a Ray cluster, that many at once."""

    address: str  # as given to --ray (local: a Ray started by the server)
    actors: int
    device: str  # each actor's: cpu or cuda
    threads: int  # torch threads (and CPUs asked of Ray) per actor


class Health(BaseModel):
    version: str
    device: str
    torch: str
    cuda: bool
    threads: int
    offline: bool
    downloads: bool
    models: HealthModels
    diffusion_models: HealthModels  # the --diffusion models, present or missing
    limits: HealthLimits
    queue: QueueCounts
    cluster: HealthCluster | None = None


class BlobStored(BaseModel):
    blob: str
    size: int


class SegmentPart(BaseModel):
    index: int  # 1-based, largest first
    color: str  # "#rrggbb": the part's key colour in the map
    pixels: int
    box: list[int]  # x0, y0, x1, y1 (exclusive), top-down


class SegmentAnswer(BaseModel):
    width: int
    height: int
    method: str
    map: str  # blob:<sha256> of the colour-key region map (GET /blobs/{sha256})
    parts: list[SegmentPart]


ERROR = {"model": ErrorBody}  # an error answer, in an endpoint's `responses`
PNG = {"content": {"image/png": {}}, "description": "a PNG image"}
