"""Storyboard jobs: one engine job per shot, all queued at once. When a shot is done its image becomes the shot's
next version and its strip in the Sequencer (storyboard_versions.py). A shot that fails (the engine refuses it,
it never reaches the engine, or its image cannot be kept) ends alone; the others go on."""

from __future__ import annotations

from typing import Any

import bpy

from ..job_tracker import Job, Key
from .jobs import FINAL_STATES, TRACKER, StatusView, ensure_timer
from .owners import find_shot
from .storyboard_versions import add_version

KIND = "shot"


def key(scene: bpy.types.Scene, uid: str | None = None) -> Key:
    """A shot's job; with no uid, the prefix of every shot of the scene."""
    return (KIND, scene.name) if uid is None else (KIND, scene.name, uid)


def _owner(job: Job) -> tuple[bpy.types.Scene | None, bpy.types.PropertyGroup | None]:
    scene = bpy.data.scenes.get(job.key[1])
    return scene, find_shot(scene, job.key[2]) if scene is not None else None


def _shot(job: Job) -> bpy.types.PropertyGroup:
    shot = _owner(job)[1]
    if shot is None:
        raise LookupError(f"the shot of job {job.key} is gone")
    return shot


class ShotJobView(StatusView):
    def status(self, job: Job) -> bpy.types.PropertyGroup:
        return _shot(job).job

    def name(self, job: Job) -> str:
        return f"shot '{_shot(job).name}'"

    def alive(self, job: Job) -> bool:
        return _owner(job)[1] is not None

    # Previews: the shot's strip changes only when a version is done.

    def apply(self, job: Job, event: Any) -> None:
        super().apply(job, event)
        scene, shot = _owner(job)
        if shot is not None and shot.job.state in FINAL_STATES and not _others_running(scene, job):
            scene.regia_storyboard.message = ""  # "3 shots queued" is over: each shot's row says how it ended

    def done(self, job: Job, png: bytes) -> str:
        scene, shot = _owner(job)
        seconds = job.seconds
        image = add_version(scene, shot, png, shot.job.job_id, seconds, job.spec)
        return f"Done: {image.name} in {seconds:.1f} s"


def _others_running(scene: bpy.types.Scene, job: Job) -> bool:
    return any(other is not job and not other.ended for other in TRACKER.running(key(scene)))


VIEW = ShotJobView()


def submit(
    scene: bpy.types.Scene, shot: bpy.types.PropertyGroup, spec: dict[str, Any], blobs: dict[str, bytes]
) -> None:
    """Queue the shot's job; it goes to the engine as soon as the engine is ready. Call jobs.poll() after a batch."""
    TRACKER.submit(key(scene, shot.uid), VIEW, spec, blobs)
    ensure_timer()


def is_running(scene: bpy.types.Scene, uid: str | None = None) -> bool:
    """A job of the shot (of any shot of the scene, when uid is None) is queued or running."""
    return TRACKER.is_running(key(scene, uid))


def cancel(scene: bpy.types.Scene, uid: str | None = None) -> int:
    """Cancel the shot's job (every shot's, when uid is None); returns how many were asked to stop."""
    return TRACKER.cancel(key(scene, uid))
