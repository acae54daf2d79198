"""The main job, headless through Blender: the Regia extension's own operators drive a managed engine.

1. Install the built extension into a private Blender user folder (never the artist's own).
2. Build a scene: the astronaut photo as the target image, a Mask with three layers (backdrop, suit and a curved
   helmet), a paint layer for the face (kept exactly), and style images from scikit-image.
3. Press Generate through `bpy.ops.regia.generate()`; the add-on starts the engine with this Python, and this script
   calls the add-on's timer function until the job ends (timers never fire in the bpy module).
4. Save the .blend, the result PNG and a contact sheet (target | regions | result) under --out.

Run with `make demo`, or: python scripts/blender_demo.py --zip dist/regia-0.1.0.zip --out out/demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "bl_ext.user_default.regia"
KAPPA = 0.5523  # bezier handle length for a quarter ellipse


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", required=True, type=Path, help="the extension zip (make extension)")
    parser.add_argument("--out", default=Path("out/demo"), type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    return parser.parse_args()


def private_blender_home(out: Path) -> None:
    """`import bpy` and installing an extension write into HOME: keep them in the output folder."""
    home = (out / "blender-home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HOME=str(home),
        BLENDER_USER_RESOURCES=str(home / "blender"),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
    )


def main() -> None:
    args = parse_args()
    out = args.out.resolve()
    private_blender_home(out)
    import bpy  # after HOME is set

    sys.path.insert(0, str(REPO))
    from engine.contact_sheet import contact_sheet, region_overview
    from engine.demo import BACKDROP, FACE, HELMET, SUIT
    from engine.images import save_png

    t_start = time.perf_counter()
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=str(args.zip.resolve()))
    assert result == {"FINISHED"}, result
    import addon_utils

    addon_utils.enable(PACKAGE, default_set=True)
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path, prefs.device = sys.executable, args.device
    jobs = sys.modules[f"{PACKAGE}.addon.blender.jobs"]
    image_jobs = sys.modules[f"{PACKAGE}.addon.blender.image_jobs"]
    inputs = sys.modules[f"{PACKAGE}.addon.blender.inputs"]

    target = build_scene(bpy, args.size, (BACKDROP, SUIT, HELMET, FACE))
    settings = target.regia
    settings.steps, settings.seed, settings.preview_every, settings.lr, settings.tv = args.steps, 7, 25, 0.08, 0.05
    settings.lock_seed = True  # the demo makes the same image every run
    print(f"blender demo: scene built ({len(settings.regions)} regions); starting the engine and generating")

    t_generate = time.perf_counter()
    assert bpy.ops.regia.generate() == {"FINISHED"}
    first_preview = drive(bpy, jobs, image_jobs, target)
    status = target.regia_job
    if status.state != "DONE":
        sys.exit(f"blender demo: the job ended {status.state}: {status.message}")
    elapsed = time.perf_counter() - t_generate

    result_image = target.regia_history[-1].image
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.png").write_bytes(result_image.packed_file.data)
    job = inputs.job_input(target)
    regions = [(r.name, r.mode, r.mask) for r in job.regions]
    init = np.round(job.target[..., :3] * 255).astype(np.uint8)
    result_pixels = read_rgb(bpy, result_image)
    overview = region_overview(init, regions, (args.size, args.size))
    sheet = contact_sheet([("target", init), ("regions", overview), (result_image.name, result_pixels)])
    save_png(out / "contact_sheet.png", sheet)
    blend = out / "regia_demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    (out / "spec.json").write_text(json.dumps(json.loads(result_image["regia_spec"]), indent=2) + "\n")

    addon_utils.disable(PACKAGE, default_set=True)  # stops the engine the add-on started
    total = time.perf_counter() - t_start
    print(f"blender demo: {args.steps} steps at {args.size}x{args.size}: first preview after {first_preview:.1f}s, ")
    print(f"  done in {elapsed:.1f}s (engine start-up included); {total:.1f}s in all")
    print(f"blender demo: wrote {blend}, {out / 'result.png'} and {out / 'contact_sheet.png'}")


def build_scene(bpy, size: int, shapes: tuple) -> object:
    from skimage import data, transform

    backdrop, suit, helmet, face = shapes
    target = new_image(bpy, "astronaut", transform.resize(data.astronaut(), (size, size), anti_aliasing=True))
    bpy.context.scene.regia_target = target

    mask = bpy.data.masks.new(name="Astronaut")
    polygon_layer(mask, "backdrop", backdrop[1])
    polygon_layer(mask, "suit", suit[1])
    ellipse_layer(mask, "helmet", helmet[1])
    assert bpy.ops.regia.region_add_mask_layer(mask="Astronaut") == {"FINISHED"}
    assert bpy.ops.regia.region_add_paint(name="face") == {"FINISHED"}
    settings = target.regia
    face_region = settings.regions["face"]
    paint_ellipse(bpy, face_region.paint_image, face[1], size)
    face_region.mode, face_region.feather = "keep", 8.0

    space = new_image(bpy, "deep space", data.hubble_deep_field()[100:700, 200:800] / 255.0)
    brick = new_image(bpy, "brick", tint(data.brick(), (0.95, 0.45, 0.3)))
    for name, style, extra in (("backdrop", space, "#0b1026 #1d2a5c #6a4c93 #f2e9dc"), ("suit", brick, "")):
        settings.active_region = settings.regions.find(name)
        settings.regions[name].feather = 4.0
        assert bpy.ops.regia.guide_add(kind="STYLE", image=style.name) == {"FINISHED"}
        if extra:
            assert bpy.ops.regia.guide_add(kind="PALETTE", weight=0.3) == {"FINISHED"}
            settings.regions[name].guides[-1].colors = extra
    helmet_region = settings.regions["helmet"]
    helmet_region.mode, helmet_region.strength = "embolden", 2.0
    return target


def tint(gray: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    g = gray.astype(np.float32)[..., None] / 255.0
    return np.clip(g * np.array(colour) * 1.3, 0, 1)


def new_image(bpy, name: str, rgb: np.ndarray) -> object:
    """A byte image from a top-down RGB float array (values in [0, 1])."""
    h, w = rgb.shape[:2]
    image = bpy.data.images.new(name, w, h)
    rgba = np.ones((h, w, 4), dtype=np.float32)
    rgba[..., :3] = rgb[..., :3]
    image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())
    image.update()
    return image


def read_rgb(bpy, image) -> np.ndarray:
    w, h = image.size
    flat = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    return np.round(flat.reshape(h, w, 4)[::-1, :, :3] * 255).astype(np.uint8)


def mask_co(row: float, col: float) -> tuple[float, float]:
    """The demo's shapes are (row, col) on a 512 square; mask space is y-up on the square."""
    return col / 512.0, 1.0 - row / 512.0


def polygon_layer(mask, name: str, points: list[tuple[float, float]]) -> None:
    spline = mask.layers.new(name=name).splines.new()
    spline.points.add(len(points) - 1)
    for point, (row, col) in zip(spline.points, points, strict=True):
        point.co = mask_co(row, col)
        point.handle_type = "VECTOR"
    spline.use_cyclic = True


def ellipse_layer(mask, name: str, geometry: tuple[float, float, float, float]) -> None:
    """An ellipse as four bezier points with aligned handles: a curved mask, as an artist would draw it."""
    row, col, r_radius, c_radius = geometry
    cx, cy = mask_co(row, col)
    rx, ry = c_radius / 512.0, r_radius / 512.0
    spline = mask.layers.new(name=name).splines.new()
    spline.points.add(3)
    for point, (dx, dy) in zip(spline.points, [(1, 0), (0, 1), (-1, 0), (0, -1)], strict=True):
        point.handle_type = "ALIGNED"
        point.co = (cx + dx * rx, cy + dy * ry)
        tx, ty = -dy * rx * KAPPA, dx * ry * KAPPA  # the tangent, counter-clockwise
        point.handle_left = (point.co[0] - tx, point.co[1] - ty)
        point.handle_right = (point.co[0] + tx, point.co[1] + ty)
    spline.use_cyclic = True


def paint_ellipse(bpy, image, geometry: tuple[float, float, float, float], size: int) -> None:
    """Stand in for the artist's brush: paint the face white into the region's paint layer."""
    from skimage import draw

    row, col, r_radius, c_radius = (v * size / 512.0 for v in geometry)
    rgb = np.zeros((size, size, 3), dtype=np.float32)
    rr, cc = draw.ellipse(row, col, r_radius, c_radius, shape=(size, size))
    rgb[rr, cc] = 1.0
    pixels = np.ones((size, size, 4), dtype=np.float32)
    pixels[..., :3] = rgb
    image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel())
    image.update()


def drive(bpy, jobs, image_jobs, target) -> float:
    """Call the add-on's timer function (jobs.poll) until the job ends, printing progress; returns seconds to the
    first preview."""
    started, first_preview, last_report = time.perf_counter(), None, -1
    preview_name = f"{target.name} (preview)"
    while image_jobs.is_running(target):
        jobs.poll()
        status = target.regia_job
        if first_preview is None and preview_name in bpy.data.images:
            first_preview = time.perf_counter() - started
        if status.steps and status.step * 10 // status.steps > last_report:
            last_report = status.step * 10 // status.steps
            print(f"  {status.state.lower():9s} step {status.step:4d} of {status.steps}  {status.message}", flush=True)
        time.sleep(0.05)
    jobs.poll()
    return first_preview if first_preview is not None else float("nan")


if __name__ == "__main__":
    main()
