"""Storyboard jobs: one engine job per shot, all queued at once, and a timer that follows them.

`poll()` is the bpy.app.timers function (tests call it directly). Like runtime.poll it never waits: it drains each
shot's JobSession and updates the shot's status; when a shot is done its image becomes the shot's next version
and its strip in the Sequencer. A shot that fails (the engine refuses it, or it never reaches the engine) ends
alone; the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import bpy

from .. import job_session as js
from . import engine
from .runtime import FINAL_STATES, POLL_INTERVAL, failure_kind, open_session, report, show_progress
from .storyboard_versions import add_version

_REDRAWN = ("SEQUENCE_EDITOR", "PROPERTIES", "IMAGE_EDITOR")


@dataclass
class ShotJob:
    scene: str
    uid: str
    spec: dict[str, Any]
    blobs: dict[str, bytes]
    session: js.JobSession | None = None
    started: float = field(default_factory=time.perf_counter)


ACTIVE: dict[tuple[str, str], ShotJob] = {}


def find_shot(scene: bpy.types.Scene, uid: str) -> bpy.types.PropertyGroup | None:
    return next((shot for shot in scene.regia_storyboard.shots if shot.uid == uid), None)


def set_error(shot: bpy.types.PropertyGroup, kind: str, message: str) -> None:
    status = shot.job
    status.state, status.error_kind, status.message = "FAILED", kind, message
    report(f"shot '{shot.name}': {message}", "ERROR")


def submit(
    scene: bpy.types.Scene, shot: bpy.types.PropertyGroup, spec: dict[str, Any], blobs: dict[str, bytes]
) -> None:
    """Queue the shot's job; it goes to the engine as soon as the engine is ready. Call poll() after a batch."""
    status = shot.job
    status.state, status.error_kind, status.message = "STARTING", "NONE", "Waiting for the engine"
    status.step, status.steps, status.fraction, status.eta_seconds, status.job_id = 0, spec["steps"], 0, 0, ""
    ACTIVE[(scene.name, shot.uid)] = ShotJob(scene=scene.name, uid=shot.uid, spec=spec, blobs=blobs)
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL, persistent=True)


def is_running(scene: bpy.types.Scene, uid: str | None = None) -> bool:
    """A job of the shot (of any shot, when uid is None) is queued or running."""
    return any(key[0] == scene.name and uid in (None, key[1]) for key in ACTIVE)


def cancel(scene: bpy.types.Scene, uid: str | None = None) -> int:
    """Cancel the shot's job (every shot's, when uid is None); returns how many were asked to stop."""
    count = 0
    for key, job in list(ACTIVE.items()):
        if key[0] != scene.name or uid not in (None, key[1]):
            continue
        count += 1
        shot = find_shot(scene, job.uid)
        if job.session is None:  # never reached the engine: nothing to tell it
            del ACTIVE[key]
            if shot is not None:
                shot.job.state, shot.job.message = "CANCELLED", "Cancelled before it reached the engine"
        else:
            job.session.cancel()
            if shot is not None:
                shot.job.message = "Cancelling"
    return count


def poll() -> float | None:
    """The timer: advance the engine's start-up and every shot's job; keep running while any is active."""
    engine_state = engine.poll()
    for key, job in list(ACTIVE.items()):
        scene = bpy.data.scenes.get(job.scene)
        shot = find_shot(scene, job.uid) if scene is not None else None
        if shot is None:  # the shot (or its scene) was deleted: stop its job
            if job.session is not None:
                job.session.cancel()
            del ACTIVE[key]
            continue
        if job.session is None:
            _start(shot, job, engine_state)
        if job.session is not None:
            try:
                for event in job.session.drain():
                    _apply(scene, shot, job, event)
            except Exception as error:  # e.g. the folder is not writable: this shot fails, the timer goes on
                job.session.cancel()
                set_error(shot, "FAILED", f"Could not keep the result: {type(error).__name__}: {error}")
        if shot.job.state in FINAL_STATES:
            ACTIVE.pop(key, None)
    _redraw()
    return POLL_INTERVAL if ACTIVE or engine_state == "starting" else None


def _start(shot: bpy.types.PropertyGroup, job: ShotJob, engine_state: str) -> None:
    opened = open_session(job.spec, job.blobs, engine_state)
    if isinstance(opened, str):
        set_error(shot, "UNREACHABLE", opened)
    if not isinstance(opened, js.JobSession):
        return
    job.session = opened
    shot.job.state, shot.job.message = "UPLOADING", "Sending images to the engine"


def _apply(scene: bpy.types.Scene, shot: bpy.types.PropertyGroup, job: ShotJob, event: object) -> None:
    status = shot.job
    if isinstance(event, js.Submitted):
        status.job_id, status.state, status.message = event.job_id, "QUEUED", "Queued"
    elif isinstance(event, js.Progress):
        show_progress(status, event.status)
    elif isinstance(event, js.Done):
        show_progress(status, event.status)
        seconds = time.perf_counter() - job.started
        image = add_version(scene, shot, event.png, status.job_id, seconds, job.spec)
        status.state, status.fraction, status.message = "DONE", 1.0, f"Done: {image.name} in {seconds:.1f} s"
    elif isinstance(event, js.Cancelled):
        status.state, status.message = "CANCELLED", "Cancelled"
    elif isinstance(event, js.Failed):
        set_error(shot, failure_kind(event.message), f"Job failed: {event.message}")
    elif isinstance(event, js.Unreachable):
        set_error(shot, "UNREACHABLE", event.message)
    # Previews: the shot's strip changes only when a version is done.


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in _REDRAWN:
                area.tag_redraw()


def shutdown() -> None:
    for job in ACTIVE.values():
        if job.session is not None:
            job.session.cancel()
    ACTIVE.clear()
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)
