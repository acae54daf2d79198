"""The first run as an artist meets it, for real (run by tests/test_install_real.py): a fresh Blender user folder,
no Python configured; Install Engine builds the engine's environment with its real pinned packages (PyTorch
included); then Generate on an image with a mask region and a style guide runs on that environment's engine.

argv: the extension zip. Prints `REGIA-RESULT {json}` lines, and REGIA-OK at the end.
"""

from __future__ import annotations

import json
import sys
import time

import bpy
import numpy as np

ZIP = sys.argv[1]
PACKAGE = "bl_ext.user_default.regia"
W, H = 48, 32


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def blender(name: str):
    return sys.modules[f"{PACKAGE}.addon.blender.{name}"]


def main() -> None:
    assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True) == {
        "FINISHED"
    }
    install, connection, jobs = blender("install_engine"), blender("connection"), blender("jobs")
    prefs = connection.preferences()
    prefs.device = "cpu"
    bpy.context.preferences.system.use_online_access = True
    started = time.monotonic()
    assert bpy.ops.regia.engine_install() == {"FINISHED"}
    while install.poll() is not None:
        assert time.monotonic() - started < 1800, install.status()
        time.sleep(0.5)
    status = install.status()
    emit(phase="install", status=status.state, message=status.message, seconds=time.monotonic() - started,
         python=connection.python_path(prefs), state=install.state())  # fmt: skip

    # An image, a region painted on a paint layer, a style guide in it: Generate.
    target = bpy.data.images.new("photo", W, H)
    pixels = np.ones((H, W, 4), dtype=np.float32)
    pixels[..., :3] = np.random.default_rng(0).random((H, W, 3))
    target.pixels.foreach_set(pixels.ravel())
    style = bpy.data.images.new("stripes", 16, 16)
    stripes = np.ones((16, 16, 4), dtype=np.float32)
    stripes[:, ::4, :3] = (1.0, 0.1, 0.1)
    style.pixels.foreach_set(stripes.ravel())
    bpy.context.scene.regia_target = target
    assert bpy.ops.regia.region_add_paint(name="sky") == {"FINISHED"}
    region = target.regia.regions[0]
    paint = np.zeros((H, W, 4), dtype=np.float32)
    paint[..., 3], paint[H // 2 :, :, :3] = 1.0, 1.0
    region.paint_image.pixels.foreach_set(paint.ravel())
    assert bpy.ops.regia.guide_add(kind="STYLE", image="stripes") == {"FINISHED"}
    target.regia.steps, target.regia.preview_every = 12, 4
    assert bpy.ops.regia.generate() == {"FINISHED"}
    deadline = time.monotonic() + 600
    while blender("image_jobs").is_running(target):
        assert time.monotonic() < deadline, (target.regia_job.state, target.regia_job.message)
        jobs.poll()
        time.sleep(0.05)
    jobs.poll()
    history, status = target.regia_history, target.regia_job
    result = history[-1].image.name if len(history) else None
    emit(phase="generate", state=status.state, message=status.message, result=result,
         engine_python=connection.running_python())  # fmt: skip
    connection.shutdown()
    print("REGIA-OK")


main()
