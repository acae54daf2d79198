"""Headless end-to-end run of the installed Regia extension (run by tests/test_addon_e2e.py in a bpy child).

argv: extension zip, engine python, phase names... Prints `REGIA-RESULT {json}` lines for the test to check, and
REGIA-OK at the end. Everything goes through the add-on's operators; the timer's poll function is called directly,
since bpy.app.timers never fire in the bpy module.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
from pathlib import Path

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
    # Per-region losses: the ground greys a little and mirrors top and bottom.
    assert bpy.ops.regia.guide_add(kind="SATURATION", weight=-0.5) == {"FINISHED"}
    assert bpy.ops.regia.guide_add(kind="SYMMETRY", axis="horizontal", weight=2.0) == {"FINISHED"}
    settings.steps, settings.preview_every, settings.seed = 24, 4, 3
    settings.lock_seed = True  # the phases compare specs and pixels: the same seed every Generate
    return target


def prefs() -> bpy.types.AddonPreferences:
    return bpy.context.preferences.addons[PACKAGE].preferences


def addon_module(name: str):
    return sys.modules[f"{PACKAGE}.addon.blender.{name}"]


def drive(target: bpy.types.Image, timeout: float = 240.0, on_poll=None) -> dict:
    """Call the timer function until the target's job ends; record what the artist would have seen."""
    jobs, image_jobs = addon_module("jobs"), addon_module("image_jobs")
    seen = {"states": [], "preview_hashes": [], "steps": [], "longest_poll": 0.0}
    deadline = time.monotonic() + timeout
    while image_jobs.is_running(target):
        assert time.monotonic() < deadline, f"job did not end: {target.regia_job.state} {target.regia_job.message}"
        t0 = time.perf_counter()
        jobs.poll()
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
    jobs.poll()
    seen["final"] = target.regia_job.state
    seen["message"] = target.regia_job.message
    seen["error_kind"] = target.regia_job.error_kind
    return seen


def phase_generate(target: bpy.types.Image) -> None:
    before = pixels(target).copy()
    assert bpy.ops.regia.generate() == {"FINISHED"}
    drawn: list[int] = []

    def draw_while_running(status: bpy.types.PropertyGroup) -> None:
        if status.state == "RUNNING" and not drawn:
            drawn.append(draw_everything(target))

    seen = drive(target, on_poll=draw_while_running)
    assert drawn, "never saw the job running"
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
        engine_pid=addon_module("connection")._managed.pid,
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
    same = rebuilt == json.loads(result["regia_spec"])
    # Re-run: the same settings and seed on the same engine give the same pixels, in a new image.
    assert bpy.ops.regia.result_rerun(result=result.name) == {"FINISHED"}
    seen = drive(target)
    again = bpy.data.images.get("photo.regia.002")
    identical = again is not None and bool(np.array_equal(pixels(again), pixels(result)))
    emit(phase="roundtrip", same=same, regions=len(settings.regions), rerun=seen["final"], identical=identical)


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
    bpy.ops.regia.list_remove(list_id="REGION_GUIDES")
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


class Recorder:
    """A stand-in for UILayout that checks what a panel asks for: every property, operator and list it names
    must exist. Panels cannot be drawn without a window, so this is how their code runs headless."""

    def __init__(self, calls: list[str]) -> None:
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name: str, value: object) -> None:  # row.scale_y = ..., operator(...).scope = ...
        pass

    def __getattr__(self, name: str):
        def call(*args, **kwargs) -> Recorder:
            if name == "label":
                self.calls.append(f"label:{kwargs.get('text', '')}")
            elif name in ("prop", "prop_search"):
                self.calls.append(f"prop:{args[1]}")
            elif name == "operator":
                self.calls.append(f"operator:{args[0]}:{kwargs.get('icon', '')}")
            else:
                self.calls.append(name)
            if name in ("prop", "prop_search", "template_ID"):
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"{name}: {type(data).__name__} has no property {prop!r}"
            if name in ("operator", "operator_menu_enum"):
                group, op = args[0].split(".")
                getattr(getattr(bpy.ops, group), op).get_rna_type()  # raises for an unknown operator
            if name == "template_list":
                assert hasattr(bpy.types, args[0]), f"no UIList {args[0]}"
                for data, prop in ((args[2], args[3]), (args[4], args[5])):
                    assert prop in data.bl_rna.properties, f"template_list: no property {prop!r}"
            return Recorder(self.calls)

        return call


def draw_everything(target: bpy.types.Image) -> int:
    """Run every Regia panel's and list's draw code against the current state; returns the number of UI calls."""
    from types import SimpleNamespace

    calls: list[str] = []
    context = SimpleNamespace(scene=bpy.context.scene, space_data=None, area=None)
    panels = [getattr(bpy.types, n) for n in dir(bpy.types) if n.startswith("REGIA_PT_")]
    assert len(panels) >= 5, panels
    settings = target.regia
    for index in range(max(1, len(settings.regions))):
        settings.active_region = index
        region = settings.regions[index] if settings.regions else None
        for guide_index in range(max(1, len(region.guides) if region else 1)):
            if region is not None:
                region.active_guide = guide_index
            for panel in panels:
                if panel.poll(context) if hasattr(panel, "poll") else True:
                    panel.draw(SimpleNamespace(layout=Recorder(calls)), context)
    lists = [(settings, "regions"), (settings.regions[0], "guides"), (target, "regia_history")]
    for data, prop in lists:
        for item in getattr(data, prop):
            bpy.types.REGIA_UL_items.draw_item(None, context, Recorder(calls), data, item, 0, data, "", 0)
    draw_everything.labels = [c[len("label:") :] for c in calls if c.startswith("label:")]
    draw_everything.props = sorted({c[len("prop:") :] for c in calls if c.startswith("prop:")})
    return len(calls)


def phase_ui(target: bpy.types.Image) -> None:
    settings = target.regia
    settings.active_region = 0
    region = settings.regions[0]
    kind_items = region.guides[0].bl_rna.properties["kind"].enum_items
    kinds = [item.identifier for item in kind_items]
    icons = bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys()
    missing_icons = [item.icon for item in kind_items if item.icon not in icons]
    before = len(region.guides)
    for kind in kinds:
        bpy.ops.regia.guide_add(kind=kind, text="x", axis="horizontal")
    added = len(region.guides) - before
    calls = draw_everything(target)
    labels, drawn_props = draw_everything.labels, draw_everything.props
    # A scribble painted on a new canvas the target's size; the region's mask shown as the engine gets it.
    settings.active_region = 0
    region.active_guide = [g.kind for g in region.guides].index("SCRIBBLE")
    assert bpy.ops.regia.guide_new_canvas() == {"FINISHED"}
    canvas = region.guides[region.active_guide].image
    canvas_info = [list(canvas.size), float(pixels(canvas)[..., 3].max())]
    assert bpy.ops.regia.region_show_mask() == {"FINISHED"}
    shown = pixels(bpy.data.images["photo (region mask)"])[..., 0]
    for _ in range(added):
        settings.active_region = 0
        region.active_guide = len(region.guides) - 1
        bpy.ops.regia.list_remove(list_id="REGION_GUIDES")
    # The generic list operators move any list's active item, and say so in their tooltips.
    names = [r.name for r in settings.regions]
    settings.active_region = 0
    assert bpy.ops.regia.list_move(list_id="REGIONS", direction="DOWN") == {"FINISHED"}
    moved = [[r.name for r in settings.regions], settings.active_region]
    assert bpy.ops.regia.list_move(list_id="REGIONS", direction="UP") == {"FINISHED"}
    at_top = bpy.ops.regia.list_move(list_id="REGIONS", direction="UP")
    emit(
        phase="ui",
        calls=calls,
        props=drawn_props,
        kinds=kinds,
        missing_icons=missing_icons,
        guide_labels=[label for label in labels if label.split(":")[0] in ("Smoothness", "Saturation", "Symmetry")],
        guides_left=len(region.guides),
        canvas=canvas_info,
        shown_rows=shown.max(axis=1).round(3).tolist(),
        moved=moved,
        back=[[r.name for r in settings.regions] == names, settings.active_region, sorted(at_top)],
    )


def phase_masks(target: bpy.types.Image) -> None:
    """The masks the add-on reads: a mask layer, the painted face, and two colour keys of one region map."""
    inputs = addon_module("inputs")
    settings = target.regia
    size = (W, H)
    sky = inputs.region_mask(settings.regions["sky"], settings, size)
    face = inputs.region_mask(settings.regions["face"], settings, size)
    assert bpy.ops.regia.region_add_color_key() == {"FINISHED"}
    assert bpy.ops.regia.region_add_color_key() == {"FINISHED"}
    red, green = settings.regions[-2], settings.regions[-1]
    region_map = np.zeros((H, W, 4), dtype=np.float32)
    region_map[:, :20] = (*red.key_color, 1.0)
    region_map[:, 40:] = (*green.key_color, 1.0)
    set_pixels(settings.region_map, region_map)
    emit(
        phase="masks",
        sky_rows=sky.max(axis=1).round(3).tolist(),
        sky_cols=sky.min(axis=0)[:: W // 8].round(3).tolist(),
        face_box=[int(v) for v in np.argwhere(face > 0.5).min(axis=0)]
        + [int(v) for v in np.argwhere(face > 0.5).max(axis=0)],
        face_sum=float(face.sum()),
        keys=[list(red.key_color), list(green.key_color)],
        red_cols=inputs.region_mask(red, settings, size).max(axis=0).tolist(),
        green_cols=inputs.region_mask(green, settings, size).max(axis=0).tolist(),
        region_map_size=list(settings.region_map.size),
    )
    settings.regions.remove(len(settings.regions) - 1)
    settings.regions.remove(len(settings.regions) - 1)


def phase_clip(target: bpy.types.Image) -> None:
    """A text prompt on a region through the panel's CLIP fields: random tiny weights run; real weights that
    this machine does not have fail with the engine's message, and the settings stay."""
    settings = target.regia
    settings.active_region = 0
    assert bpy.ops.regia.guide_add(kind="TEXT", text="a red sky at dusk") == {"FINISHED"}
    assert bpy.ops.regia.guide_add(kind="NEGATIVE_TEXT", text="clouds", weight=0.5) == {"FINISHED"}
    settings.clip_model, settings.clip_weights, settings.steps = "regia-tiny", "random", 8
    assert bpy.ops.regia.generate() == {"FINISHED"}
    ran = drive(target)
    spec = json.loads(target.regia_history[-1].image["regia_spec"]) if ran["final"] == "DONE" else {}
    settings.clip_model, settings.clip_weights = "ViT-B-32", "laion2b_s34b_b79k"
    assert bpy.ops.regia.generate() == {"FINISHED"}
    missing = drive(target)
    emit(
        phase="clip",
        ran=ran["final"],
        guides=spec.get("regions", [{}])[0].get("guides"),
        models=spec.get("models"),
        missing=[missing["final"], missing["error_kind"], missing["message"]],
        kept=[settings.clip_model, len(settings.regions[0].guides)],
    )
    for _ in range(2):
        settings.active_region = 0
        settings.regions[0].active_guide = len(settings.regions[0].guides) - 1
        bpy.ops.regia.list_remove(list_id="REGION_GUIDES")
    settings.clip_model, settings.clip_weights, settings.steps = "", "", 24


DIFFUSION_PROPS = {"diffusion_model", "sampler", "diffusion_steps", "cfg", "diffusion_strength", "guidance_every",
                   "guidance_strength", "use_guidance_scale", "guidance_scale", "use_own_strength",
                   "own_strength"}  # fmt: skip
OPTIMISER_PROPS = {"optimizer", "lr", "schedule"}


def added_properties(target: bpy.types.Image) -> list[tuple[str, str, str]]:
    """(owner, name, description) of every property the diffusion settings add, and of the preferences."""
    settings, storyboard = target.regia, bpy.context.scene.regia_storyboard
    picked = [
        (settings, DIFFUSION_PROPS | {"generator"}),
        (settings.regions[0], DIFFUSION_PROPS),
        (storyboard, DIFFUSION_PROPS | {"generator"}),
        (prefs().diffusion_models[0], None),
        (prefs(), None),
    ]
    found = []
    for owner, names in picked:
        for prop in owner.bl_rna.properties:
            if prop.identifier not in ("rna_type", "bl_idname") and (names is None or prop.identifier in names):
                found.append((owner.bl_rna.identifier, prop.name, prop.description))
    return found


def phase_diffusion(target: bpy.types.Image) -> None:
    """The Diffusion generator through the panel: its settings and model list, what it refuses before the engine
    sees it, and a job with the tiny random model: two regions' text prompts (one negative), one region's own
    guidance scale, the face kept."""
    settings, scene = target.regia, bpy.context.scene
    preferences, out = addon_module("preferences"), {}
    # The Diffusion Models list: Add File (as the file browser would call it), a problem on a bad path.
    model_file = Path(tempfile.mkdtemp()) / "my-model.safetensors"
    model_file.write_bytes(b"{}")
    count = len(prefs().diffusion_models)
    assert bpy.ops.regia.diffusion_model_add_file(filepath=str(model_file)) == {"FINISHED"}
    added = prefs().diffusion_models[-1]
    out["added"] = [added.name, added.path, len(prefs().diffusion_models) - count]
    assert bpy.ops.regia.list_remove(list_id="DIFFUSION_MODELS") == {"FINISHED"}
    gone = prefs().diffusion_models["Gone"].path
    problem = preferences.REGIA_OT_diffusion_model_problem.description(None, type("P", (), {"path": gone}))
    calls: list[str] = []
    preferences.draw_diffusion_models(Recorder(calls), prefs())
    for entry in prefs().diffusion_models:
        bpy.types.REGIA_UL_items.draw_item(None, bpy.context, Recorder(calls), prefs(), entry, 0, prefs(), "", 0)
    out["prefs"] = [problem, [c for c in calls if "diffusion_model" in c or "ERROR" in c]]

    # Two regions with prompts, one negative; the sky with its own guidance scale.
    settings.generator, settings.diffusion_steps, settings.preview_every = "diffusion", 4, 1
    settings.active_region = 0
    assert bpy.ops.regia.guide_add(kind="TEXT", text="a red sky at dusk") == {"FINISHED"}
    settings.regions[0].use_guidance_scale, settings.regions[0].guidance_scale = True, 9.0
    settings.active_region = 1
    assert bpy.ops.regia.guide_add(kind="NEGATIVE_TEXT", text="houses", weight=0.5) == {"FINISHED"}
    settings.regions[1].use_own_strength, settings.regions[1].own_strength = True, 0.6
    # Refused before the engine: no model, a model not in the list, Inspiration without CLIP.
    settings.diffusion_model = ""
    out["no_model"] = run_op_expecting_error(bpy.ops.regia.generate)
    settings.diffusion_model = "/somewhere/else.safetensors"
    out["unlisted"] = run_op_expecting_error(bpy.ops.regia.generate)
    settings.diffusion_model = "Tiny SD"
    assert bpy.ops.regia.guide_add(kind="INSPIRATION", image="stripes") == {"FINISHED"}
    out["inspiration"] = run_op_expecting_error(bpy.ops.regia.generate)
    bpy.ops.regia.list_remove(list_id="REGION_GUIDES")
    # The panels with Diffusion chosen (the storyboard's too).
    scene.regia_storyboard.generator, scene.regia_storyboard.diffusion_model = "diffusion", "Tiny SD"
    draw_everything(target)
    out["props"], out["labels"] = draw_everything.props, draw_everything.labels
    head = addon_module("storyboard_inputs").prepare(scene, []).storyboard
    out["storyboard"] = [head["width"], head["height"], head["generator"]["kind"], head["models"], head["steps"]]
    scene.regia_storyboard.generator = "pixels"

    before = pixels(target).copy()
    assert bpy.ops.regia.generate() == {"FINISHED"}
    seen = drive(target, timeout=400)
    result = target.regia_history[-1].image if seen["final"] == "DONE" else None
    face = np.zeros((H, W), dtype=bool)
    face[18:30, 24:40] = True
    out["ran"] = [seen["final"], seen["message"]]
    out["spec"] = json.loads(result["regia_spec"]) if result is not None else {}
    out["keep_max_diff"] = float(np.abs(pixels(result)[face, :3] - before[face, :3]).max()) if result else None
    out["result_size"] = list(result.size) if result is not None else None
    items = settings.bl_rna.properties["generator"].enum_items
    icons = bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys()
    out["generators"] = [(i.identifier, i.name, bool(i.description), i.icon in icons) for i in items]
    samplers = settings.bl_rna.properties["sampler"].enum_items
    out["samplers"] = [(i.identifier, i.name, bool(i.description)) for i in samplers]
    out["properties"] = added_properties(target)
    emit(phase="diffusion", **out)
    # Back as it was: the pixels generator, no prompts, the generator's scale.
    settings.generator, settings.preview_every = "pixels", 4
    settings.regions[0].use_guidance_scale = settings.regions[1].use_own_strength = False
    for index in (0, 1):
        settings.active_region = index
        settings.regions[index].active_guide = len(settings.regions[index].guides) - 1
        bpy.ops.regia.list_remove(list_id="REGION_GUIDES")


def phase_segment(target: bpy.types.Image) -> None:
    """Segment into Regions: the engine splits the target; each part becomes a colour-key region of a new, packed
    region map; a second run replaces those regions, not the others."""
    settings, segment = target.regia, addon_module("segment_operators")
    inputs = addon_module("inputs")
    others = [r.name for r in settings.regions]

    def segment_now(parts: int) -> dict:
        assert bpy.ops.regia.segment_regions(method="felzenszwalb", parts=parts) == {"FINISHED"}
        started = segment.is_segmenting(target)
        can_press_again = bpy.ops.regia.segment_regions.poll()
        deadline = time.monotonic() + 120
        while segment.is_segmenting(target):
            assert time.monotonic() < deadline, "segmenting did not end"
            t0 = time.perf_counter()
            segment.poll_segments()
            assert time.perf_counter() - t0 < 0.5, "the timer waited on the engine"
            time.sleep(0.05)
        keyed = [r for r in settings.regions if r.source == "COLOR_KEY"]
        masks = np.stack([inputs.region_mask(r, settings, tuple(target.size)) for r in keyed])
        region_map = settings.region_map
        return {
            "started": started, "pressable_while_running": can_press_again,
            "message": segment.messages.get(target.name),
            "names": [r.name for r in keyed], "others": [r.name for r in settings.regions if r.source != "COLOR_KEY"],
            "map": [region_map.name, list(region_map.size), region_map.packed_file is not None],
            "covered_once": float((masks.sum(0) == 1).mean()), "smallest": float(masks.sum((1, 2)).min()),
            "active": settings.regions[settings.active_region].name,
        }  # fmt: skip

    first, second = segment_now(6), segment_now(3)
    emit(phase="segment", first=first, second=second, others_before=others)
    for index in reversed(range(len(settings.regions))):  # back as it was
        if settings.regions[index].source == "COLOR_KEY":
            settings.regions.remove(index)
    settings.region_map, settings.active_region = None, 0


def phase_variations(target: bpy.types.Image) -> None:
    """Generate Variations with the seed unlocked: a new base seed, one job per seed, a numbered grid; pick one as a
    result, another as the next target."""
    settings, scene = target.regia, bpy.context.scene
    variation_jobs, jobs = addon_module("variation_jobs"), addon_module("jobs")
    settings.lock_seed, settings.steps, settings.variations = False, 6, 3
    history_before = len(target.regia_history)
    assert bpy.ops.regia.generate_variations() == {"FINISHED"}
    base = settings.seed
    blocked = bpy.ops.regia.generate_variations.poll()
    deadline = time.monotonic() + 300
    while variation_jobs.is_running(target):
        assert time.monotonic() < deadline, "variations did not end"
        jobs.poll()
        time.sleep(0.02)
    jobs.poll()
    items = list(target.regia_variations)
    made = [pixels(item.image) for item in items if item.image is not None]
    grid = bpy.data.images.get("photo (variations)")
    out = {
        "base": base, "seeds": [item.seed for item in items], "states": [item.status.state for item in items],
        "names": [item.image.name if item.image else None for item in items], "blocked_while_running": not blocked,
        "distinct": all(not np.array_equal(a, b) for i, a in enumerate(made) for b in made[i + 1 :]),
        "spec_seeds": [json.loads(item.image["regia_spec"])["seed"] for item in items if item.image],
        "grid": list(grid.size) if grid else None,
    }  # fmt: skip
    assert bpy.ops.regia.variation_pick(index=1) == {"FINISHED"}
    picked = target.regia_history[-1]
    image = picked.image
    out["picked"] = [len(target.regia_history) - history_before, image.name, picked.summary,
                     image.get("regia_target"), "regia_helper" in image, items[1].image is None]  # fmt: skip
    assert bpy.ops.regia.variation_pick(index=2, as_target=True) == {"FINISHED"}
    new_target = scene.regia_target
    out["as_target"] = [new_target.name, "regia_target" in new_target, len(new_target.regia.regions),
                        new_target.regia.seed, new_target.regia.steps]  # fmt: skip
    # Generate with the seed unlocked picks a new one each time; locked, it keeps it.
    scene.regia_target = target
    built = addon_module("inputs").job_input
    seeds = []
    for _ in range(2):
        assert bpy.ops.regia.generate() == {"FINISHED"}
        seeds.append(settings.seed)
        assert bpy.ops.regia.cancel() == {"FINISHED"}
        drive(target)
    settings.lock_seed = True
    assert bpy.ops.regia.generate() == {"FINISHED"}
    seeds.append(settings.seed)
    assert bpy.ops.regia.cancel() == {"FINISHED"}
    drive(target)
    out["generate_seeds"], out["spec_seed"] = seeds, built(target).seed
    # Vary: Presets: the same seed, a preset each.
    settings.vary, settings.variations = "PRESET", 2
    assert bpy.ops.regia.generate_variations() == {"FINISHED"}
    while variation_jobs.is_running(target):
        assert time.monotonic() < deadline + 300, "preset variations did not end"
        jobs.poll()
        time.sleep(0.02)
    jobs.poll()
    specs = [json.loads(item.image["regia_spec"]) for item in target.regia_variations if item.image]
    out["presets"] = [(spec["preset"], spec["seed"]) for spec in specs]
    settings.vary = "SEED"
    emit(phase="variations", **out)
    settings.steps, settings.seed = 24, 3


def phase_health(target: bpy.types.Image) -> None:
    engine = addon_module("connection")
    assert bpy.ops.regia.engine_check() == {"FINISHED"}
    # The CLIP Models box: each model's state from /health, Download for a missing pretrained tag.
    clip = addon_module("clip_models")
    calls: list[str] = []
    clip.draw_clip_models(Recorder(calls), prefs())
    # The CLIP Model choice in Settings: the preferences' models, and a model set before that is not in the list.
    settings = target.regia
    items = [key for key, *_rest in clip._items(settings, None)]
    settings.clip_choice = "regia-tiny:random"
    chosen = [settings.clip_model, settings.clip_weights]
    settings.clip_model, settings.clip_weights = "RN50", "openai"
    kept = [settings.clip_choice, [key for key, *_rest in clip._items(settings, None)][-1]]
    settings.clip_choice = "NONE"
    emptied = [settings.clip_model, settings.clip_weights]
    emit(phase="health", state=engine.status.state, message=engine.status.message, clip_box=calls, items=items,
         chosen=chosen, kept=kept, emptied=emptied)  # fmt: skip


def phase_bad_python(target: bpy.types.Image) -> None:
    """An interpreter without torch: the engine fails to start with a message that says how to fix it."""
    import venv

    bare = Path(tempfile.mkdtemp()) / "bare"
    venv.create(bare, with_pip=False)
    engine = addon_module("connection")
    prefs().python_path = str(bare / "bin" / "python")
    assert bpy.ops.regia.engine_restart() == {"FINISHED"}
    deadline = time.monotonic() + 60
    while engine.poll() == "starting":
        assert time.monotonic() < deadline, "a bare interpreter should fail fast"
        time.sleep(0.05)
    emit(phase="bad_python", state=engine.status.state, message=engine.status.message)
    assert bpy.ops.regia.engine_stop() == {"FINISHED"} and engine.poll() == "stopped"
    prefs().python_path = PYTHON
    assert bpy.ops.regia.engine_start() == {"FINISHED"}
    while engine.poll() == "starting":
        assert time.monotonic() < deadline + 120, "the engine did not come back"
        time.sleep(0.05)


def start_with_blender() -> None:
    """The Start with Blender preference: never with it off nor in a background Blender; once with it on. The
    generate phase then runs on the engine started here."""
    autostart, engine = addon_module("engine_autostart"), addon_module("connection")
    prefs().start_with_blender = False
    off = autostart.start_if_wanted(background=False)
    prefs().start_with_blender = True
    farm = autostart.start_if_wanted(background=True)
    stopped = engine.status.state
    started = autostart.start_if_wanted(background=False)
    pid = engine._managed.pid if engine._managed is not None else None
    again = autostart.start_if_wanted(background=False)  # already starting: not a second engine
    deadline = time.monotonic() + 300
    while autostart.follow_start() is not None:  # the timer's function, driven by hand
        assert time.monotonic() < deadline, "the engine started with Blender never came up"
        time.sleep(0.05)
    emit(phase="autostart", off=off, farm=farm, stopped=stopped, started=started, again=again,
         state=engine.status.state, pid=pid)  # fmt: skip


def main() -> None:
    install()
    assert "torch" not in sys.modules
    prefs().python_path = PYTHON
    prefs().device = "cpu"
    prefs().clip_models = "regia-tiny:random, ViT-B-32:laion2b_s34b_b79k"  # the status line reports on these
    for label, path in (("Tiny SD", "random:tiny-sd"), ("Gone", "/nonexistent/regia/gone.safetensors")):
        entry = prefs().diffusion_models.add()  # the managed engine gets --diffusion=PATH for each
        entry.name, entry.path = label, path
    target = build_scene()
    start_with_blender()
    for phase in PHASES:
        globals()[f"phase_{phase}"](target)
    engine = addon_module("connection")
    managed = engine._managed
    pid = managed.pid if managed is not None else None
    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)  # must stop the engine it started
    emit(phase="disable", engine_pid=pid)
    assert "torch" not in sys.modules, "the add-on imported torch"
    print("REGIA-OK")


main()
