"""Generate -> first preview through the Blender add-on, with the engine already running (CPU, 256x256).

Headless bpy: the extension is built and installed into a private Blender user folder, the demo scene of
scripts/blender_demo.py is built (four regions: three mask layers and a paint layer, two style images and a
palette), the managed engine is started and warmed with one job, then each round presses Generate and calls the
add-on's timer function until the preview image appears, then cancels. Prints a table of medians.

Run: PYTHONPATH=. .venv/bin/python bench/addon_first_preview.py [--rounds 5] [--size 256]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from scripts.blender_demo import PACKAGE, build_scene, private_blender_home  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preview-every", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="regia-bench-"))
    private_blender_home(tmp)
    import bpykit  # builds the zip with Blender's CLI, without importing bpy

    zip_path = bpykit.build_extension(tmp / "dist")
    import bpy  # after private_blender_home: importing bpy writes into HOME

    from engine.demo import BACKDROP, FACE, HELMET, SUIT

    addon_utils = importlib.import_module("addon_utils")  # importable once bpy is

    assert bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(zip_path)) == {"FINISHED"}
    addon_utils.enable(PACKAGE, default_set=True)
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path, prefs.device = sys.executable, "cpu"
    jobs = sys.modules[f"{PACKAGE}.addon.blender.jobs"]
    image_jobs = sys.modules[f"{PACKAGE}.addon.blender.image_jobs"]
    engine = sys.modules[f"{PACKAGE}.addon.blender.connection"]
    target = build_scene(bpy, args.size, (BACKDROP, SUIT, HELMET, FACE))
    target.regia.steps, target.regia.preview_every = 1000, args.preview_every

    t0 = time.perf_counter()
    assert bpy.ops.regia.engine_start() == {"FINISHED"}
    while engine.poll() == "starting":
        time.sleep(0.02)
    assert engine.status.state == "ready", engine.status.message
    start_up = time.perf_counter() - t0

    rows = [run_once(bpy, jobs, image_jobs, target) for _ in range(args.rounds + 1)][1:]  # the first warms the engine
    addon_utils.disable(PACKAGE, default_set=True)
    print(f"Generate -> first preview, {args.size}x{args.size}, preview every {args.preview_every} steps, "
          f"{args.rounds} rounds after one warm-up; engine start-up (not counted) {start_up:.1f} s")  # fmt: skip
    print("| stage | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for key, label in (
        ("operator", "Generate operator on the main thread (read pixels, rasterise, encode PNGs)"),
        ("submitted", "until the job is submitted (blobs checked/uploaded)"),
        ("running", "until the engine reports it running"),
        ("preview", "until the preview image is in Blender"),
        ("longest_poll", "longest single timer poll"),
    ):
        values = [row[key] for row in rows]
        print(f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")


def run_once(bpy, jobs, image_jobs, target) -> dict[str, float]:
    preview_name = f"{target.name} (preview)"
    if preview_name in bpy.data.images:
        bpy.data.images.remove(bpy.data.images[preview_name])
    row: dict[str, float] = {"longest_poll": 0.0}
    t0 = time.perf_counter()
    assert bpy.ops.regia.generate() == {"FINISHED"}
    row["operator"] = time.perf_counter() - t0
    status = target.regia_job
    while preview_name not in bpy.data.images:
        t_poll = time.perf_counter()
        jobs.poll()
        row["longest_poll"] = max(row["longest_poll"], time.perf_counter() - t_poll)
        now = time.perf_counter() - t0
        if "submitted" not in row and status.job_id:
            row["submitted"] = now
        if "running" not in row and status.state == "RUNNING":
            row["running"] = now
        assert status.state not in ("FAILED", "CANCELLED"), status.message
        time.sleep(0.005)
    row["preview"] = time.perf_counter() - t0
    row.setdefault("submitted", row["preview"])
    row.setdefault("running", row["preview"])
    bpy.ops.regia.cancel()
    while image_jobs.is_running(target):
        jobs.poll()
        time.sleep(0.01)
    return row


if __name__ == "__main__":
    main()
