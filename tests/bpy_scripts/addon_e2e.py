"""Headless end-to-end run of the installed Regia extension (run by tests/test_addon_e2e.py in a bpy child).

argv: extension zip, engine python, phase names... Prints `REGIA-RESULT {json}` lines for the test to check, and
REGIA-OK at the end. Everything goes through the add-on's operators; the timer's poll function is called directly,
since bpy.app.timers never fire in the bpy module.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import bpy
import numpy as np

ZIP, PYTHON, *PHASES = sys.argv[1:]
PACKAGE = "bl_ext.user_default.regia"
W, H = 64, 48


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def install() -> None:
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True)
    assert result == {"FINISHED"}, result


def pixels(image: bpy.types.Image) -> np.ndarray:
    flat = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(image.size[1], image.size[0], 4)[::-1]  # top row first


def set_pixels(image: bpy.types.Image, top_down: np.ndarray) -> None:
    image.pixels.foreach_set(np.ascontiguousarray(top_down[::-1]).ravel())
    image.update()


def box_layer(mask: bpy.types.Mask, name: str, x0: float, y0: float, x1: float, y1: float) -> None:
    layer = mask.layers.new(name=name)
    spline = layer.splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], strict=True):
        point.co = co
        point.handle_type = "VECTOR"
        point.handle_left = point.handle_right = co
    spline.use_cyclic = True


def build_scene() -> bpy.types.Image:
    rng = np.random.default_rng(0)
    target = bpy.data.images.new("photo", W, H)
    image = np.ones((H, W, 4), dtype=np.float32)
    image[..., :3] = np.round(rng.random((H, W, 3)) * 255) / 255
    set_pixels(target, image)
    style = bpy.data.images.new("stripes", 32, 32)
    stripes = np.ones((32, 32, 4), dtype=np.float32)
    stripes[:, ::4, :3] = (1.0, 0.1, 0.1)
    set_pixels(style, stripes)

    mask = bpy.data.masks.new(name="Layers")
    # Mask space is a square on the longer side (W), centred: the top band and the bottom band of the image.
    box_layer(mask, "sky", 0.0, 0.5 + 12 / W, 1.0, 1.0)
    box_layer(mask, "ground", 0.0, 0.0, 1.0, 0.5 - 12 / W)

    scene = bpy.context.scene
    scene.regia_target = target
    assert bpy.ops.regia.region_add_mask_layer(mask="Layers") == {"FINISHED"}  # both layers
    assert bpy.ops.regia.region_add_paint(name="face") == {"FINISHED"}
    settings = target.regia
    face = settings.regions[2]
    paint = np.zeros((H, W, 4), dtype=np.float32)
    paint[..., 3] = 1.0
    paint[18:30, 24:40, :3] = 1.0
    set_pixels(face.paint_image, paint)
    face.mode = "keep"
    settings.active_region = 0
    assert bpy.ops.regia.guide_add(kind="STYLE", image="stripes", weight=1.0) == {"FINISHED"}
    settings.active_region = 1
    assert bpy.ops.regia.guide_add(kind="PALETTE") == {"FINISHED"}
    settings.steps, settings.preview_every, settings.seed = 24, 4, 3
    return target


def prefs() -> bpy.types.AddonPreferences:
    return bpy.context.preferences.addons[PACKAGE].preferences


def addon_module(name: str):
    return sys.modules[f"{PACKAGE}.addon.blender.{name}"]


def drive(target: bpy.types.Image, timeout: float = 240.0, on_poll=None) -> dict:
    """Call the timer function until the target's job ends; record what the artist would have seen."""
    runtime = addon_module("runtime")
    seen = {"states": [], "preview_hashes": [], "steps": [], "longest_poll": 0.0}
    deadline = time.monotonic() + timeout
    while runtime.is_running(target):
        assert time.monotonic() < deadline, f"job did not end: {target.regia_job.state} {target.regia_job.message}"
        t0 = time.perf_counter()
        runtime.poll()
        seen["longest_poll"] = max(seen["longest_poll"], time.perf_counter() - t0)
        status = target.regia_job
        if not seen["states"] or seen["states"][-1] != status.state:
            seen["states"].append(status.state)
        seen["steps"].append(status.step)
        preview = bpy.data.images.get(f"{target.name} (preview)")
        if preview is not None and preview.size[0]:
            digest = hash(pixels(preview).tobytes())
            if not seen["preview_hashes"] or seen["preview_hashes"][-1] != digest:
                seen["preview_hashes"].append(digest)
        if on_poll is not None:
            on_poll(status)
        time.sleep(0.02)
    runtime.poll()
    seen["final"] = target.regia_job.state
    seen["message"] = target.regia_job.message
    seen["error_kind"] = target.regia_job.error_kind
    return seen


def phase_generate(target: bpy.types.Image) -> None:
    before = pixels(target).copy()
    assert bpy.ops.regia.generate() == {"FINISHED"}
    seen = drive(target)
    result = bpy.data.images.get("photo.regia.001")
    assert result is not None, (seen, [i.name for i in bpy.data.images])
    out = pixels(result)
    face = np.zeros((H, W), dtype=bool)
    face[18:30, 24:40] = True
    spec = json.loads(result["regia_spec"])
    history = target.regia_history
    emit(
        phase="generate",
        seen={k: v for k, v in seen.items() if k != "preview_hashes"},
        previews=len(seen["preview_hashes"]),
        source_unchanged=bool(np.array_equal(pixels(target), before)),
        keep_max_diff=float(np.abs(out[face, :3] - before[face, :3]).max()),
        edit_mean_diff=float(np.abs(out[~face, :3] - before[~face, :3]).mean()),
        result_size=list(result.size),
        packed=result.packed_file is not None,
        result_target=result["regia_target"],
        spec=spec,
        history=[(h.image.name, h.job_id, h.summary) for h in history],
    )


def phase_roundtrip(target: bpy.types.Image) -> None:
    """Change the settings, then load them back from the result: the rebuilt spec is the stored one."""
    spec_of = addon_module("inputs").job_input
    build = sys.modules[f"{PACKAGE}.addon.spec_builder"].build_job
    result = bpy.data.images["photo.regia.001"]
    settings = target.regia
    settings.steps, settings.seed = 99, 42
    settings.regions.remove(0)
    assert bpy.ops.regia.result_load_settings(result=result.name) == {"FINISHED"}
    rebuilt = build(spec_of(target)).spec
    emit(phase="roundtrip", same=rebuilt == json.loads(result["regia_spec"]), regions=len(settings.regions))


def phase_cancel(target: bpy.types.Image) -> None:
    target.regia.steps = 5000
    images_before = len(bpy.data.images)
    assert bpy.ops.regia.generate() == {"FINISHED"}
    cancelled = []

    def cancel_when_running(status: bpy.types.PropertyGroup) -> None:
        if status.state == "RUNNING" and status.step >= 1 and not cancelled:
            cancelled.append(status.step)
            assert bpy.ops.regia.cancel() == {"FINISHED"}

    seen = drive(target, on_poll=cancel_when_running)
    emit(phase="cancel", final=seen["final"], cancelled_at=cancelled, new_images=len(bpy.data.images) - images_before)
    target.regia.steps = 24


def run_op_expecting_error(op) -> str:
    """In background mode bpy.ops turns an operator's ERROR report into a RuntimeError: that is the report."""
    try:
        result = op()
    except RuntimeError as error:
        return str(error)
    return f"no error: {result}"


def phase_errors(target: bpy.types.Image) -> None:
    settings = target.regia
    out = {}
    # An empty mask layer.
    mask = bpy.data.masks["Layers"]
    mask.layers.new(name="nothing")
    assert bpy.ops.regia.region_add_mask_layer(mask="Layers", layer="nothing") == {"FINISHED"}
    out["empty"] = run_op_expecting_error(bpy.ops.regia.generate)
    out["empty_status"] = [target.regia_job.state, target.regia_job.error_kind, target.regia_job.message]
    settings.regions.remove(len(settings.regions) - 1)
    # A paint layer of the wrong size.
    face = settings.regions[2]
    right_size = face.paint_image
    face.paint_image = bpy.data.images.new("small", 8, 8)
    out["size"] = run_op_expecting_error(bpy.ops.regia.generate)
    face.paint_image = right_size
    # A job the engine refuses: text needs CLIP weights, which this engine does not have.
    settings.active_region = 0
    bpy.ops.regia.guide_add(kind="TEXT", text="a red sky")
    assert bpy.ops.regia.generate() == {"FINISHED"}
    seen = drive(target)
    out["engine_refused"] = [seen["final"], seen["error_kind"], seen["message"]]
    bpy.ops.regia.guide_remove()
    out["steps_kept"] = settings.steps
    out["regions_kept"] = len(settings.regions)
    # The engine down: a remote URL where nothing listens.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefs().engine_mode = "REMOTE"
    prefs().remote_url = f"http://127.0.0.1:{port}"
    out["down"] = run_op_expecting_error(bpy.ops.regia.generate)
    out["down_status"] = [target.regia_job.state, target.regia_job.error_kind, target.regia_job.message]
    prefs().engine_mode = "MANAGED"
    emit(phase="errors", **out)


def main() -> None:
    install()
    assert "torch" not in sys.modules
    prefs().python_path = PYTHON
    prefs().device = "cpu"
    target = build_scene()
    for phase in PHASES:
        globals()[f"phase_{phase}"](target)
    engine = addon_module("engine")
    managed = engine._managed
    pid = managed.pid if managed is not None else None
    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)  # must stop the engine it started
    emit(phase="disable", engine_pid=pid)
    assert "torch" not in sys.modules, "the add-on imported torch"
    print("REGIA-OK")


main()
