"""Image-editor jobs: one per target image. The live preview `<target> (preview)` updates in the editor, and the
result is a NEW image `<target>.regia.NNN`, packed, carrying its spec and the settings that made it, added to the
target's history. The target itself is never written to."""

from __future__ import annotations

import json

import bpy

from ..job_tracker import Job, Key
from ..naming import next_result_name, preview_name
from ..spec_builder import BuiltJob
from .images import load_png, mark_helper, show_in_editors
from .jobs import TRACKER, StatusView, ensure_timer, poll
from .paths import file_stem, user_dir, write_file
from .texture_operators import use_in_materials

KIND = "image"


def key(target: bpy.types.Image) -> Key:
    return (KIND, target.name)


def _target(job: Job) -> bpy.types.Image:
    return bpy.data.images[job.key[1]]


class ImageJobView(StatusView):
    def status(self, job: Job) -> bpy.types.PropertyGroup:
        return _target(job).regia_job

    def alive(self, job: Job) -> bool:
        return bpy.data.images.get(job.key[1]) is not None

    def preview(self, job: Job, png: bytes) -> None:
        target = _target(job)
        name = preview_name(target.name)
        path = user_dir("previews") / f"{file_stem(target.name)}.png"
        write_file(path, png)
        existing = bpy.data.images.get(name)
        preview = mark_helper(load_png(path, name, existing), "preview", target.name)
        if existing is None:
            show_in_editors(preview, replacing={target.name})

    def done(self, job: Job, png: bytes) -> str:
        target = _target(job)
        name = next_result_name(target.name, bpy.data.images.keys())
        path = user_dir("results") / f"{file_stem(name)}.png"
        write_file(path, png)
        result = load_png(path, name)
        result.pack()  # the result lives in the .blend, whatever happens to the results folder
        spec, job_id, seconds = job.spec, target.regia_job.job_id, job.seconds
        result["regia_target"] = target.name
        result["regia_spec"] = json.dumps(spec, sort_keys=True)
        result["regia_settings"] = job.data
        result["regia_job"] = job_id
        item = target.regia_history.add()
        item.image, item.job_id, item.seconds = result, job_id, seconds
        item.summary = f"{spec['width']}x{spec['height']}, {spec['steps']} steps, seed {spec['seed']}, {seconds:.1f} s"
        target.regia_active_history = len(target.regia_history) - 1
        show_in_editors(result, replacing={target.name, preview_name(target.name)})
        wired, problems = use_in_materials(target, result)  # a texture's result goes into its object's materials
        in_materials = f", in {', '.join(wired)}" if wired else ""
        return f"Done: {name} in {seconds:.1f} s{in_materials}" + "".join(f"; {p}" for p in problems)


VIEW = ImageJobView()


def submit(target: bpy.types.Image, built: BuiltJob, settings_json: str) -> None:
    """Queue a job for `target`; it starts as soon as the engine is ready (now, or once the managed one is up)."""
    TRACKER.submit(key(target), VIEW, built.spec, built.blobs, data=settings_json)
    ensure_timer()
    poll()


def cancel(target: bpy.types.Image) -> bool:
    return TRACKER.cancel(key(target)) > 0


def is_running(target: bpy.types.Image) -> bool:
    return TRACKER.is_running(key(target))
