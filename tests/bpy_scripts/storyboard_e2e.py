"""Headless end-to-end run of the installed extension's storyboards (run by tests/test_storyboard_addon.py in a bpy
child).

argv: extension zip, engine python, output folder, phase names... Prints `REGIA-RESULT {json}` lines for the test
to check, and REGIA-OK at the end. Shots are made and generated through the add-on's operators; the storyboard
timer's poll function is called directly, since bpy.app.timers never fire in the bpy module.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

ZIP, PYTHON, OUT, *PHASES = sys.argv[1:]
PACKAGE = "bl_ext.user_default.regia"
W, H = 64, 48
CAMERA_MARKERS = (("A", 1), ("B", 25), ("C", 60))  # shot name, marker frame
FRAME_END = 90


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def module(name: str):
    return sys.modules[f"{PACKAGE}.addon.{name}"]


def pixels(image: bpy.types.Image) -> np.ndarray:
    flat = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(image.size[1], image.size[0], 4)[::-1]  # top row first


def set_pixels(image: bpy.types.Image, top_down: np.ndarray) -> None:
    image.pixels.foreach_set(np.ascontiguousarray(top_down[::-1]).ravel())
    image.update()


def strips(scene: bpy.types.Scene) -> list:
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def storyboard() -> bpy.types.PropertyGroup:
    return bpy.context.scene.regia_storyboard


def shot(name: str) -> bpy.types.PropertyGroup:
    return storyboard().shots[name]


def expect_error(op, **kwargs) -> str:
    """In background mode bpy.ops turns an operator's ERROR report into a RuntimeError: that is the report."""
    try:
        result = op(**kwargs)
    except RuntimeError as error:
        return str(error)
    return f"no error: {result}"


# ---- the scene -------------------------------------------------------------------------------------------------


def build_scene() -> None:
    """Two cubes, left and right, in front of three cameras bound to markers; one marker binds no camera."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, FRAME_END
    for name, x in (("Left", -1.7), ("Right", 1.7)):
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata(
            [(x + dx, dy, dz) for dx in (-0.7, 0.7) for dy in (-0.7, 0.7) for dz in (-0.7, 0.7)], [],
            [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)],
        )  # fmt: skip
        scene.collection.objects.link(bpy.data.objects.new(name, mesh))
    light = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    light.rotation_euler = (0.6, 0.3, 0.0)
    scene.collection.objects.link(light)
    for index, (name, frame) in enumerate(CAMERA_MARKERS):
        camera = bpy.data.objects.new(f"Cam{name}", bpy.data.cameras.new(f"Cam{name}"))
        camera.location = (0.0, -9.0 - index, 0.0)
        camera.rotation_euler = (np.pi / 2, 0.0, 0.0)  # looking along +y at both cubes
        scene.collection.objects.link(camera)
        scene.timeline_markers.new(name, frame=frame).camera = camera
    scene.timeline_markers.new("note", frame=40)  # binds no camera: skipped
    scene.camera = bpy.data.objects["CamA"]
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")


def install() -> None:
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True)
    assert result == {"FINISHED"}, result
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.python_path, prefs.device = PYTHON, "cpu"


def drive(timeout: float = 240.0, on_poll=None) -> float:
    """Call the storyboard timer until no shot is queued or running; returns the longest poll in seconds."""
    jobs, shot_jobs = module("blender.jobs"), module("blender.shot_jobs")
    scene = bpy.context.scene
    longest = 0.0
    deadline = time.monotonic() + timeout
    while shot_jobs.is_running(scene):
        states = {s.name: (s.job.state, s.job.message) for s in storyboard().shots}
        assert time.monotonic() < deadline, f"the storyboard did not end: {states}"
        t0 = time.perf_counter()
        jobs.poll()
        longest = max(longest, time.perf_counter() - t0)
        if on_poll is not None:
            on_poll()
        time.sleep(0.02)
    jobs.poll()
    return longest


def shot_report() -> dict:
    return {
        s.name: {
            "state": s.job.state,
            "kind": s.job.error_kind,
            "message": s.job.message,
            "versions": [v.image.name for v in s.versions if v.image],
            "image": s.image.name if s.image else None,
        }
        for s in storyboard().shots
    }


def strip_report() -> list[dict]:
    editor = bpy.context.scene.sequence_editor
    return [
        {
            "name": s.name,
            "shot": s.get("regia_shot"),
            "channel": s.channel,
            "channel_name": editor.channels[s.channel].name,
            "frame_start": s.frame_start,
            "duration": s.frame_final_duration,
            "file": Path(bpy.path.abspath(s.directory), s.elements[0].filename).name,
            "type": s.type,
        }
        for s in strips(bpy.context.scene)
    ]


# ---- phases ----------------------------------------------------------------------------------------------------


def phase_markers() -> None:
    assert bpy.ops.regia.storyboard_from_markers() == {"FINISHED"}
    emit(
        phase="markers",
        shots=[[s.name, s.frame_start, s.frame_end, s.camera.name if s.camera else None] for s in storyboard().shots],
        message=storyboard().message,
    )


def phase_text() -> None:
    text = bpy.data.texts.new("shots")
    text.from_string(
        "# the storyboard\n\nA: a red door in the rain\nB: the hallway at night\n"
        "C [60-90]: a window, morning light\nExtra: the street outside\n"
    )
    uids = {s.name: s.uid for s in storyboard().shots}
    assert bpy.ops.regia.storyboard_from_text(text="shots") == {"FINISHED"}
    shots = [[s.name, s.frame_start, s.frame_end, s.description, s.camera.name if s.camera else None]
             for s in storyboard().shots]  # fmt: skip
    kept = all(storyboard().shots[name].uid == uid for name, uid in uids.items())
    bad = bpy.data.texts.new("bad")
    bad.from_string("A: fine\n\n# ok\nno colon on this line\n")
    error = expect_error(bpy.ops.regia.storyboard_from_text, text="bad")
    emit(phase="text", shots=shots, kept_uids=kept, error=error, count_after_error=len(storyboard().shots))


def projected_box(obj: bpy.types.Object, camera: bpy.types.Object) -> list[int]:
    """The object's bounding box on the canvas, in pixels (x0, y0, x1, y1), rows from the top."""
    scene = bpy.context.scene
    render = scene.render
    saved = (render.resolution_x, render.resolution_y, render.resolution_percentage)
    render.resolution_x, render.resolution_y, render.resolution_percentage = W, H, 100  # the aspect the render uses
    points = [world_to_camera_view(scene, camera, obj.matrix_world @ Vector(c)) for c in obj.bound_box]
    render.resolution_x, render.resolution_y, render.resolution_percentage = saved
    xs = [p.x * W for p in points]
    ys = [(1.0 - p.y) * H for p in points]
    return [int(np.floor(min(xs))), int(np.floor(min(ys))), int(np.ceil(max(xs))), int(np.ceil(max(ys)))]


def phase_blockout() -> None:
    board = storyboard()
    board.width, board.height = W, H
    a = shot("A")
    a.use_blockout, a.blockout = True, "BOTH"
    render = bpy.context.scene.render
    before = (render.engine, render.resolution_x, render.resolution_y, bpy.context.scene.camera.name)
    board.active_shot = list(board.shots).index(a)
    assert bpy.ops.regia.storyboard_blockout() == {"FINISHED"}
    after = (render.engine, render.resolution_x, render.resolution_y, bpy.context.scene.camera.name)
    ink = pixels(a.outline_image)[..., 0] < 0.5
    inside = np.zeros_like(ink)
    boxes = {}
    for name in ("Left", "Right"):
        x0, y0, x1, y1 = projected_box(bpy.data.objects[name], a.camera)
        boxes[name] = [x0, y0, x1, y1]
        inside[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = True
    shaded = pixels(a.blockout_image)
    png = module("png_codec").encode_png
    (Path(OUT) / "blockout.png").write_bytes(png(shaded))  # for a person to look at when a check fails
    (Path(OUT) / "outline.png").write_bytes(png(pixels(a.outline_image)))
    # A shot with no camera, in a scene with none.
    camera, a.camera = a.camera, None
    scene_camera, bpy.context.scene.camera = bpy.context.scene.camera, None
    error = expect_error(bpy.ops.regia.storyboard_blockout)
    a.camera, bpy.context.scene.camera = camera, scene_camera
    emit(
        phase="blockout",
        boxes=boxes,
        size=list(a.outline_image.size),
        ink_inside=float(ink[inside].mean()),
        ink_outside=float(ink[~inside].mean()),
        ink_per_box=[float(ink[y0:y1, x0:x1].mean()) for x0, y0, x1, y1 in boxes.values()],
        shaded_contrast=float(shaded[..., :3].std()),
        settings_restored=before == after,
        no_camera=error,
        materials=[m.name for m in bpy.data.materials],
    )


def style_image() -> bpy.types.Image:
    image = bpy.data.images.new("stripes", 32, 32)
    stripes = np.ones((32, 32, 4), dtype=np.float32)
    stripes[:, ::4, :3] = (1.0, 0.1, 0.1)
    set_pixels(image, stripes)
    return image


def phase_generate() -> None:
    board = storyboard()
    board.width, board.height, board.steps, board.preview_every, board.seed = W, H, 8, 4, 7
    board.palette, board.seed_rule = "#223344 #ddcc88", "per_shot"
    assert bpy.ops.regia.list_add(list_id="STYLE_IMAGES") == {"FINISHED"}
    board.style_images[board.active_style_image].image = style_image()
    # 'Extra' has a text guide without a CLIP model: the engine refuses it. 'Broken' has a guide image whose file
    # is missing: the add-on cannot build it. The other shots must not care.
    board.active_shot = list(board.shots).index(shot("Extra"))
    assert bpy.ops.regia.guide_add(list_id="SHOT_GUIDES", kind="TEXT", text="a lamp post") == {"FINISHED"}
    assert bpy.ops.regia.list_add(list_id="SHOTS") == {"FINISHED"}
    broken = board.shots[board.active_shot]
    broken.name, broken.description = "Broken", "nothing"
    missing = bpy.data.images.new("missing", 8, 8)
    missing.source, missing.filepath = "FILE", "/nonexistent/missing.png"
    assert bpy.ops.regia.guide_add(list_id="SHOT_GUIDES", kind="STYLE", image="missing") == {"FINISHED"}
    # C is painted in two: a region on its left half, where the style goes.
    board.active_shot = list(board.shots).index(shot("C"))
    assert bpy.ops.regia.storyboard_region_add(source="PAINT") == {"FINISHED"}
    paint = np.zeros((H, W, 4), dtype=np.float32)
    paint[..., 3], paint[:, : W // 2, :3] = 1.0, 1.0
    set_pixels(shot("C").regions[0].paint_image, paint)
    # C's own guides greys it a little and mirrors it left and right, as any shot's guide list offers.
    assert bpy.ops.regia.guide_add(list_id="SHOT_GUIDES", kind="SATURATION", weight=-0.5) == {"FINISHED"}
    assert bpy.ops.regia.guide_add(list_id="SHOT_GUIDES", kind="SYMMETRY", axis="vertical") == {"FINISHED"}
    assert bpy.ops.regia.storyboard_generate() == {"FINISHED"}
    longest = drive()
    specs = {s.name: json.loads(s.image["regia_spec"]) for s in board.shots if s.image is not None}
    emit(
        phase="generate",
        shots=shot_report(),
        strips=strip_report(),
        channel=board.channel,
        uids={s.name: s.uid for s in board.shots},
        spec_a=specs.get("A"),
        regions_c=specs.get("C", {}).get("regions"),
        guides_c=specs.get("C", {}).get("guides"),
        seeds={name: spec["seed"] for name, spec in specs.items()},
        longest_poll=longest,
        packed={s.name: s.image.packed_file is not None for s in board.shots if s.image is not None},
    )


def phase_regenerate() -> None:
    board = storyboard()
    before = {s["name"]: s for s in strip_report()}
    old_image = shot("B").image.name
    board.active_shot = list(board.shots).index(shot("B"))
    seed_before = shot("B").seed
    assert bpy.ops.regia.storyboard_regenerate_shot() == {"FINISHED"}
    drive()
    report = {
        "before": before,
        "after": strip_report(),
        "b_versions": shot_report()["B"]["versions"],
        "b_image": shot("B").image.name,
        "old_image_kept": old_image in bpy.data.images,
        "b_uid": shot("B").uid,
        "seeds": [seed_before, shot("B").seed],
    }
    first, second = pixels(bpy.data.images[old_image]), pixels(shot("B").image)
    # Locked, Regenerate Shot keeps the seed: the same image again, as a third version.
    shot("B").lock_seed = True
    assert bpy.ops.regia.storyboard_regenerate_shot() == {"FINISHED"}
    drive()
    report["locked"] = [shot("B").seed, bool(np.array_equal(pixels(shot("B").image), second))]
    shot("B").lock_seed = False
    emit(phase="regenerate", new_take_differs=not bool(np.array_equal(first, second)), **report)
    # Back to the first version: its strip shows it again.
    assert bpy.ops.regia.storyboard_use_version(version=0) == {"FINISHED"}
    emit(phase="use_version", image=shot("B").image.name, strips=strip_report())


def phase_export() -> None:
    """Export every buildable shot (the two broken ones are removed first), then compare the contact sheet with the
    shots' images, and hand the add-on's per-shot specs to the test (refs as sha256) to compare with the engine's."""
    board = storyboard()
    for name in ("Broken", "Extra"):
        board.active_shot = list(board.shots).index(shot(name))
        assert bpy.ops.regia.list_remove(list_id="SHOTS") == {"FINISHED"}
    folder = Path(OUT) / "export"
    assert bpy.ops.regia.storyboard_export(directory=str(folder)) == {"FINISHED"}
    sheet_image = bpy.data.images.load(str(folder / "contact_sheet.png"))
    sheet = pixels(sheet_image)[..., :3]
    sheet_module = module("contact_sheet")
    cell = sheet_module.cell_size(board.width, board.height)
    wrap = sys.modules[f"{PACKAGE}.regia_contract.label_font"].wrap
    labels = [[f"{n:02d} {s.name}", f"frames {s.frame_start}-{s.frame_end}", s.description]
              for n, s in enumerate(board.shots, start=1)]  # fmt: skip
    lines = max(sum(len(wrap(text, cell[0])) for text in label if text.strip()) for label in labels)
    size, boxes = sheet_module.layout(len(board.shots), cell, 4, lines)
    resize = module("pixels").resize

    def difference(box, image: bpy.types.Image) -> float:
        region = sheet[box.y : box.y + box.height, box.x : box.x + box.width]
        return float(np.abs(region - resize(pixels(image)[..., :3], box.width, box.height)).mean())

    diffs = [difference(box, s.image) for s, box in zip(board.shots, boxes, strict=True)]
    # Another shot's image in the first shot's place must not match as well: the comparison can fail.
    swapped = difference(boxes[0], board.shots[1].image)
    prepared = module("blender.storyboard_inputs").prepare(bpy.context.scene, list(board.shots))
    shot_spec = sys.modules[f"{PACKAGE}.regia_contract.storyboard"].shot_spec
    specs = [_refs_as_sha(shot_spec(prepared.storyboard, i)) for i in range(len(board.shots))]
    emit(
        phase="export",
        folder=str(folder),
        files=sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
        sheet_size=list(sheet_image.size),
        expected_size=list(size),
        diffs=diffs,
        swapped=swapped,
        specs=specs,
        names=[s.name for s in board.shots],
    )


def _refs_as_sha(spec: dict) -> dict:
    """blob:<sha256> -> the sha256, so the test can match specs whose images are files."""
    text = json.dumps(spec)
    return json.loads(text.replace('"blob:', '"'))


def phase_cancel() -> None:
    board = storyboard()
    board.steps = 5000
    versions = {s.name: len(s.versions) for s in board.shots}
    assert bpy.ops.regia.storyboard_generate() == {"FINISHED"}
    cancelled = []

    def cancel_when_running() -> None:
        if not cancelled and any(s.job.state == "RUNNING" and s.job.step >= 1 for s in board.shots):
            cancelled.append(True)
            assert bpy.ops.regia.storyboard_cancel() == {"FINISHED"}

    drive(on_poll=cancel_when_running)
    emit(
        phase="cancel",
        cancelled=bool(cancelled),
        states={s.name: s.job.state for s in board.shots},
        new_versions={s.name: len(s.versions) - versions[s.name] for s in board.shots},
    )
    board.steps = 8


class Recorder:
    """A stand-in for UILayout that checks what a panel asks for: every property, operator and list it names must
    exist. Panels cannot be drawn without a window, so this is how their code runs headless."""

    def __init__(self, calls: list[str]) -> None:
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name: str, value: object) -> None:
        pass

    def __getattr__(self, name: str):
        def call(*args, **kwargs) -> Recorder:
            self.calls.append(name)
            if name in ("prop", "prop_search", "template_ID"):
                assert args[1] in args[0].bl_rna.properties, f"{name}: {type(args[0]).__name__} has no {args[1]!r}"
            if name in ("operator", "operator_menu_enum"):
                group, op = args[0].split(".")
                getattr(getattr(bpy.ops, group), op).get_rna_type()  # raises for an unknown operator
            if name == "template_list":
                assert hasattr(bpy.types, args[0]), f"no UIList {args[0]}"
                for data, prop in ((args[2], args[3]), (args[4], args[5])):
                    assert prop in data.bl_rna.properties, f"template_list: no property {prop!r}"
            return Recorder(self.calls)

        return call


def phase_ui() -> None:
    """Every storyboard panel and list draws, for each shot, and Open in Image Editor makes the shot the target."""
    board = storyboard()
    calls: list[str] = []
    context = SimpleNamespace(scene=bpy.context.scene, space_data=None, area=None)
    panels = [getattr(bpy.types, n) for n in dir(bpy.types) if n.startswith("REGIA_PT_") and "storyboard" in n]
    spaces = sorted({p.bl_space_type for p in panels})
    for index in range(len(board.shots)):
        board.active_shot = index
        for panel in panels:
            if not hasattr(panel, "poll") or panel.poll(context):
                panel.draw(SimpleNamespace(layout=Recorder(calls)), context)
    lists = [(board, "shots"), (board, "style_images")] + [(s, "versions") for s in board.shots]
    lists += [(s, "guides") for s in board.shots]
    for data, prop in lists:
        for item in getattr(data, prop):
            bpy.types.REGIA_UL_items.draw_item(None, context, Recorder(calls), data, item, 0, data, "", 0)
    board.active_shot = 0
    assert bpy.ops.regia.storyboard_open_shot() == {"FINISHED"}
    emit(
        phase="ui",
        panels=len(panels),
        spaces=spaces,
        calls=len(calls),
        target=bpy.context.scene.regia_target.name if bpy.context.scene.regia_target else None,
        shot_image=board.shots[0].image.name if board.shots[0].image else None,
    )


def main() -> None:
    Path(OUT).mkdir(parents=True, exist_ok=True)
    install()
    build_scene()
    for phase in PHASES:
        globals()[f"phase_{phase}"]()
    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)
    assert "torch" not in sys.modules, "the add-on imported torch"
    print("REGIA-OK")


main()
