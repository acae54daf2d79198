"""Every running job, image-editor targets and storyboard shots alike, followed by ONE bpy timer.

`poll()` is the bpy.app.timers function: it runs the pure tracker (addon/job_tracker.py), which drains each job's
session and hands its events to the job's view, then redraws the editors that show jobs. It never waits on the
network and never raises: an exception while one job's event is applied fails that job alone. Tests call poll()
directly, since timers never fire in the bpy module.

StatusView is what both kinds of job share: their progress shows in a RegiaJobStatus. image_jobs.py and
shot_jobs.py add what differs (where the status lives, the preview, what Done writes).
"""

from __future__ import annotations

import contextlib
from typing import Any

import bpy

from .. import job_session as js
from ..engine_client import EngineError
from ..job_tracker import POLL_INTERVAL, Cancelling, Job, Sending, Tracker, Waiting
from . import connection
from .redraw import redraw

FINAL_STATES = ("DONE", "FAILED", "CANCELLED", "INTERRUPTED")
# Words in an engine error that mean weights are missing rather than the job being wrong.
_MODEL_WORDS = ("weights", "checkpoint", "pretrained", "model")
# Where jobs show: the image editor, the storyboard, preferences and material properties, a texture in the 3D Viewport.
_REDRAWN = ("IMAGE_EDITOR", "SEQUENCE_EDITOR", "PROPERTIES", "VIEW_3D")


class _Connection:
    """The tracker's Engine, over connection.py."""

    def poll(self) -> str:
        return connection.poll()

    def client(self) -> Any | None:
        return connection.client()

    def failure(self) -> str:
        return connection.status.message


TRACKER = Tracker(_Connection(), interval=POLL_INTERVAL)


def poll() -> float | None:
    """The timer: advance the engine's start-up and every job; keep running while there is something to watch."""
    interval = TRACKER.poll()
    with contextlib.suppress(Exception):  # a redraw is a courtesy: it must never stop the timer
        _redraw()
    return interval


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL, persistent=True)


def shutdown() -> None:
    TRACKER.shutdown()
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)


def _redraw() -> None:
    redraw(_REDRAWN)


def report(message: str, level: str = "INFO") -> None:
    """Asynchronous errors reach the artist as reports too (the status bar and Info editor), not only the panel."""
    print(f"Regia: {message}")
    with contextlib.suppress(RuntimeError, AttributeError):  # no operator context (e.g. during unregister)
        bpy.ops.regia.report(message=message, level=level)


def ensure_engine() -> None:
    """Before queueing jobs: start the managed engine if it is not up (non-blocking), or check that a remote one
    answers (one call, 100 ms at most). Raises EngineStartError or EngineError with a message for the artist."""
    if connection.is_managed():
        if connection.poll() in ("stopped", "failed"):
            connection.start()
        return
    client = connection.client()
    if client is None:
        raise EngineError("No engine is set up: see Regia's preferences")
    client.health()


def failure_kind(message: str) -> str:
    """MODELS when an engine error is about missing weights rather than the job being wrong, else FAILED."""
    return "MODELS" if any(w in message.lower() for w in _MODEL_WORDS) else "FAILED"


def show_progress(status: bpy.types.PropertyGroup, engine_status: dict) -> None:
    """Copy an engine job status into a RegiaJobStatus (a target's, or a storyboard shot's)."""
    state = str(engine_status.get("state", "running")).upper()
    status.state = "RUNNING" if state == "DONE" else state  # DONE only once the result is kept
    status.step = int(engine_status.get("step") or 0)
    status.steps = int(engine_status.get("steps") or status.steps)
    status.fraction = float(engine_status.get("fraction") or 0.0)
    status.eta_seconds = float(engine_status.get("eta_seconds") or 0.0)
    status.message = "Queued" if state == "QUEUED" else f"Step {status.step} of {status.steps}"
    if state == "INTERRUPTED":
        status.message = "The engine stopped while running this job"


class StatusView:
    """A job whose progress shows in a RegiaJobStatus. Subclasses say where it lives and what Done keeps."""

    def status(self, job: Job) -> bpy.types.PropertyGroup:
        raise NotImplementedError

    def name(self, job: Job) -> str:
        """How reports name the job's owner ("shot 'A'"), or "" when the panel it shows in says it."""
        return ""

    def alive(self, job: Job) -> bool:
        raise NotImplementedError

    def preview(self, job: Job, png: bytes) -> None:
        """A live preview (nothing by default)."""

    def done(self, job: Job, png: bytes) -> str:
        """Keep the result; returns the status line ("Done: <image> in 3.2 s")."""
        raise NotImplementedError

    def apply(self, job: Job, event: Any) -> None:
        status = self.status(job)
        if isinstance(event, Waiting):
            status.state, status.error_kind, status.message = "STARTING", "NONE", "Waiting for the engine"
            status.step, status.steps, status.fraction, status.eta_seconds = 0, int(job.spec.get("steps", 0)), 0, 0
            status.job_id = ""
        elif isinstance(event, Sending):
            status.state, status.message = "UPLOADING", "Sending images to the engine"
        elif isinstance(event, js.Submitted):
            status.job_id, status.state, status.message = event.job_id, "QUEUED", "Queued"
        elif isinstance(event, js.Progress):
            show_progress(status, event.status)
        elif isinstance(event, js.Preview):
            self.preview(job, event.png)
        elif isinstance(event, js.Done):
            show_progress(status, event.status)
            message = self.done(job, event.png)
            status.state, status.fraction, status.message = "DONE", 1.0, message
        elif isinstance(event, Cancelling):
            status.message = "Cancelling"
        elif isinstance(event, js.Cancelled):
            reached = event.status is not None
            status.state, status.message = (
                "CANCELLED",
                "Cancelled" if reached else "Cancelled before it reached the engine",
            )
        elif isinstance(event, js.Failed):
            self.set_error(job, failure_kind(event.message), f"Job failed: {event.message}")
        elif isinstance(event, js.Unreachable):
            self.set_error(job, "UNREACHABLE", event.message)

    def fail(self, job: Job, message: str) -> None:
        self.set_error(job, "FAILED", message)

    def set_error(self, job: Job, kind: str, message: str) -> None:
        status = self.status(job)
        status.state, status.error_kind, status.message = "FAILED", kind, message
        name = self.name(job)
        report(f"{name}: {message}" if name else message, "ERROR")
