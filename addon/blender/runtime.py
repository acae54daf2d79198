"""Running jobs: submit through a JobSession (network off the main thread), and a timer that applies its events.

`poll()` is the bpy.app.timers function. It never waits: it drains each session's event queue and updates the
target's status, the live preview image and, at the end, a NEW result image `<target>.regia.NNN` with the spec and
the settings stored on it. Tests call poll() directly, since timers never fire in the bpy module.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .. import job_session as js
from ..engine_client import EngineError
from ..naming import next_result_name, preview_name
from ..spec_builder import BuiltJob
from . import engine
from .images import load_png, redraw_image_editors, show_in_editors
from .paths import user_dir

POLL_INTERVAL = 0.1
FINAL_STATES = ("DONE", "FAILED", "CANCELLED", "INTERRUPTED")
# Words in an engine error that mean weights are missing rather than the job being wrong.
_MODEL_WORDS = ("weights", "checkpoint", "pretrained", "model")


@dataclass
class ActiveJob:
    target: str
    built: BuiltJob
    settings_json: str
    session: js.JobSession | None = None
    started: float = field(default_factory=time.perf_counter)
    events: int = 0


ACTIVE: dict[str, ActiveJob] = {}


def _status(target: bpy.types.Image) -> bpy.types.PropertyGroup:
    return target.regia_job


def set_error(target: bpy.types.Image, kind: str, message: str, state: str = "FAILED") -> None:
    status = _status(target)
    status.state, status.error_kind, status.message = state, kind, message
    report(message, "ERROR" if kind != "NONE" else "INFO")


def report(message: str, level: str = "INFO") -> None:
    """Asynchronous errors reach the artist as reports too (the status bar and Info editor), not only the panel."""
    print(f"Regia: {message}")
    with contextlib.suppress(RuntimeError, AttributeError):  # no operator context (e.g. during unregister)
        bpy.ops.regia.report(message=message, level=level)


def ensure_engine() -> None:
    """Before queueing jobs: start the managed engine if it is not up (non-blocking), or check that a remote one
    answers (one call, 100 ms at most). Raises EngineStartError or EngineError with a message for the artist."""
    if engine.is_managed():
        if engine.poll() in ("stopped", "failed"):
            engine.start()
        return
    client = engine.client()
    if client is None:
        raise EngineError("No engine is set up: see Regia's preferences")
    client.health()


def open_session(spec: dict, blobs: dict[str, bytes], engine_state: str) -> js.JobSession | str | None:
    """A started JobSession once the engine is ready; a message when it will not be; None while it starts."""
    if engine_state == "failed":
        return f"The engine did not start: {engine.status.message}"
    client = engine.client()
    if client is None:
        return "The engine is not running: start it in Regia's panel" if engine_state == "stopped" else None
    return js.JobSession(client, spec, blobs).start()


def failure_kind(message: str) -> str:
    """MODELS when an engine error is about missing weights rather than the job being wrong, else FAILED."""
    return "MODELS" if any(w in message.lower() for w in _MODEL_WORDS) else "FAILED"


def submit(target: bpy.types.Image, built: BuiltJob, settings_json: str) -> None:
    """Queue a job for `target`; it starts as soon as the engine is ready (now, or once the managed one is up)."""
    status = _status(target)
    status.state, status.error_kind, status.message = "STARTING", "NONE", "Waiting for the engine"
    status.step, status.steps, status.fraction, status.eta_seconds, status.job_id = 0, built.spec["steps"], 0, 0, ""
    ACTIVE[target.name] = ActiveJob(target=target.name, built=built, settings_json=settings_json)
    ensure_timer()
    poll()


def cancel(target: bpy.types.Image) -> bool:
    job = ACTIVE.get(target.name)
    if job is None:
        return False
    if job.session is None:  # still waiting for the engine: nothing was sent
        del ACTIVE[target.name]
        status = _status(target)
        status.state, status.message = "CANCELLED", "Cancelled before it reached the engine"
    else:
        job.session.cancel()
        _status(target).message = "Cancelling"
    return True


def is_running(target: bpy.types.Image) -> bool:
    return target.name in ACTIVE


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL, persistent=True)


def poll() -> float | None:
    """The timer: advance the engine's start-up and every job; keep running while there is something to watch."""
    engine_state = engine.poll()
    for name, job in list(ACTIVE.items()):
        target = bpy.data.images.get(name)
        if target is None:  # the artist deleted the target: stop its job
            if job.session is not None:
                job.session.cancel()
            del ACTIVE[name]
            continue
        if job.session is None:
            _start_session(target, job, engine_state)
        if job.session is not None:
            for event in job.session.drain():
                job.events += 1
                _apply(target, job, event)
        if _status(target).state in FINAL_STATES:
            ACTIVE.pop(name, None)
    redraw_image_editors()
    return POLL_INTERVAL if ACTIVE or engine_state == "starting" else None


def _start_session(target: bpy.types.Image, job: ActiveJob, engine_state: str) -> None:
    opened = open_session(job.built.spec, job.built.blobs, engine_state)
    if isinstance(opened, str):
        set_error(target, "UNREACHABLE", opened)
    if not isinstance(opened, js.JobSession):
        return
    job.session = opened
    _status(target).state, _status(target).message = "UPLOADING", "Sending images to the engine"


def _apply(target: bpy.types.Image, job: ActiveJob, event: object) -> None:
    status = _status(target)
    if isinstance(event, js.Submitted):
        status.job_id, status.state, status.message = event.job_id, "QUEUED", "Queued"
    elif isinstance(event, js.Progress):
        show_progress(status, event.status)
    elif isinstance(event, js.Preview):
        _show_preview(target, event.png)
    elif isinstance(event, js.Done):
        show_progress(status, event.status)
        _finish(target, job, event.png)
    elif isinstance(event, js.Cancelled):
        status.state, status.message = "CANCELLED", "Cancelled"
    elif isinstance(event, js.Failed):
        set_error(target, failure_kind(event.message), f"Job failed: {event.message}")
    elif isinstance(event, js.Unreachable):
        set_error(target, "UNREACHABLE", event.message)


def show_progress(status: bpy.types.PropertyGroup, engine_status: dict) -> None:
    """Copy an engine job status into a RegiaJobStatus (a target's, or a storyboard shot's)."""
    state = str(engine_status.get("state", "running")).upper()
    status.state = "RUNNING" if state == "DONE" else state  # DONE only once the result image exists
    status.step = int(engine_status.get("step") or 0)
    status.steps = int(engine_status.get("steps") or status.steps)
    status.fraction = float(engine_status.get("fraction") or 0.0)
    status.eta_seconds = float(engine_status.get("eta_seconds") or 0.0)
    status.message = "Queued" if state == "QUEUED" else f"Step {status.step} of {status.steps}"
    if state == "INTERRUPTED":
        status.message = "The engine stopped while running this job"


def file_stem(name: str) -> str:
    """A file name from an image name: letters, digits, '-', '_' and '.'; anything else becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _show_preview(target: bpy.types.Image, png: bytes) -> None:
    name = preview_name(target.name)
    path = user_dir("previews") / f"{file_stem(target.name)}.png"
    write_file(path, png)
    existing = bpy.data.images.get(name)
    first = existing is None
    preview = load_png(path, name, existing)
    if first:
        show_in_editors(preview, replacing={target.name})


def _finish(target: bpy.types.Image, job: ActiveJob, png: bytes) -> None:
    name = next_result_name(target.name, bpy.data.images.keys())
    path = user_dir("results") / f"{file_stem(name)}.png"
    write_file(path, png)
    result = load_png(path, name)
    result.pack()  # the result lives in the .blend, whatever happens to the results folder
    result["regia_target"] = target.name
    result["regia_spec"] = json.dumps(job.built.spec, sort_keys=True)
    result["regia_settings"] = job.settings_json
    status = _status(target)
    result["regia_job"] = status.job_id
    seconds = time.perf_counter() - job.started
    item = target.regia_history.add()
    item.image, item.job_id, item.seconds = result, status.job_id, seconds
    spec = job.built.spec
    item.summary = f"{spec['width']}x{spec['height']}, {spec['steps']} steps, seed {spec['seed']}, {seconds:.1f} s"
    target.regia_active_history = len(target.regia_history) - 1
    status.state, status.fraction, status.message = "DONE", 1.0, f"Done: {name} in {seconds:.1f} s"
    show_in_editors(result, replacing={target.name, preview_name(target.name)})


def write_file(path: Path, data: bytes) -> None:
    """Write beside, then rename: Blender never reads a half-written PNG."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def shutdown() -> None:
    for job in ACTIVE.values():
        if job.session is not None:
            job.session.cancel()
    ACTIVE.clear()
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)
