"""One job's record: its state and status as the API shows it, what status.json holds, and the job ids.

JobStore (jobs.py) keeps the records; this module knows what one record is and how it reads back from disk.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

ID_RE = re.compile(r"j\d{8}T\d{6}-[0-9a-f]{8}")
STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
REQUEUEABLE = ("interrupted", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled", "interrupted")
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
FLUSH_EVERY = 1.0  # seconds between status.json writes while a job makes progress
JOB_FILES = ("preview.png", "result.png", "losses.csv")


def interrupted_message(job_id: str) -> str:
    return f"the engine stopped while this job was running; run it again with POST /jobs/{job_id}/requeue"


def new_job_id() -> str:
    return "j" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def valid_job_id(value: str) -> bool:
    return ID_RE.fullmatch(value) is not None


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def overwrite_in_place(path: Path, data: bytes) -> None:
    """Rewrite a small existing file over its own blocks: needs no free space when it fits them (a full disk)."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.write(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity; a diverged loss is reported as null."""
    return value if value is not None and math.isfinite(value) else None


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclass(eq=False)
class JobRecord:
    id: str
    steps: int
    created: str
    created_ns: int  # listing order (oldest first), kept across restarts
    queued_ns: int  # FIFO order, kept across restarts; a requeue moves a job to the back
    state: str = "queued"
    step: int = 0
    losses: dict[str, float | None] = field(default_factory=dict)
    total_loss: float | None = None
    error: str | None = None
    cancel_requested: bool = False
    started: str | None = None
    finished: str | None = None
    elapsed: float = 0.0  # seconds from start to finish, frozen once the job stops
    # In memory only:
    token: Cancellable | None = None
    run_since: float | None = None  # time.monotonic() at start
    eta: float | None = None
    eta_at: float = 0.0
    version: int = 0  # bumped on every change; status.json is written only forward
    written: int = -1
    flushed_at: float = 0.0
    io_lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, position: int | None, now: float) -> dict[str, Any]:
        elapsed, eta = self.elapsed, None
        if self.state == "running" and self.run_since is not None:
            elapsed = now - self.run_since
            if self.eta is not None:
                eta = max(0.0, self.eta - (now - self.eta_at))
        elif self.state == "done":
            eta = 0.0
        return {
            "id": self.id,
            "state": self.state,
            "step": self.step,
            "steps": self.steps,
            "fraction": self.step / self.steps if self.steps else 0.0,
            "elapsed_seconds": round(elapsed, 3),
            "eta_seconds": None if eta is None else round(eta, 3),
            "losses": dict(self.losses),
            "total_loss": self.total_loss,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "queue_position": position,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


def stamp_seconds(iso: str) -> float:
    """Seconds since the epoch of a contract timestamp; 0 when unreadable (so it counts as old)."""
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    return 0.0


def record_from(job_id: str, data: dict[str, Any]) -> JobRecord:
    state = data["state"]
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    losses = data.get("losses") or {}
    return JobRecord(
        id=job_id,
        steps=int(data["steps"]),
        created=str(data["created"]),
        created_ns=int(data.get("created_ns", 0)),
        queued_ns=int(data.get("queued_ns", 0)),
        state=state,
        step=int(data.get("step", 0)),
        losses={str(k): finite_or_none(float(v)) if v is not None else None for k, v in dict(losses).items()},
        total_loss=finite_or_none(float(data["total_loss"])) if data.get("total_loss") is not None else None,
        error=data.get("error"),
        cancel_requested=bool(data.get("cancel_requested", False)),
        started=data.get("started"),
        finished=data.get("finished"),
        elapsed=float(data.get("elapsed_seconds") or 0.0),
        version=1,
        written=1,  # what is on disk already says this
    )
