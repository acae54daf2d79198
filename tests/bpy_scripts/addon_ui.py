"""Regia's panels as an artist reads them, in headless bpy (run by tests/test_addon_ui.py in a bpy child); no engine.

argv: extension zip, phase names... Prints `REGIA-RESULT {json}` lines for the test to check, and REGIA-OK at the end.
Panels cannot be drawn without a window, so their draw code runs against a recording layout (UiRecorder), which
checks every property, operator and label they show: a tooltip, Title Case, Blender's spelling, an icon Blender has.
"""

from __future__ import annotations

import importlib
import json
import sys
from types import SimpleNamespace

import bpy
import numpy as np

ZIP, *PHASES = sys.argv[1:]
PACKAGE = "bl_ext.user_default.regia"
W, H = 64, 48
SIDEBAR_PX = 280  # a typical sidebar's width, in pixels at UI scale 1
# What Blender shows for a property nobody described: the built-in `name` of a PropertyGroup.
DEFAULT_DESCRIPTIONS = {"Unique name used in the code and scripting"}
# Properties the file browser fills in (Blender's own operators leave them as they are too).
FILE_BROWSER = {"rna_type", "filepath", "directory", "filename", "files"}
ICONS = set(bpy.types.UILayout.bl_rna.functions["prop"].parameters["icon"].enum_items.keys())


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


def module(name: str):
    return importlib.import_module(f"{PACKAGE}.addon.{name}")


def blender(name: str):
    return sys.modules[f"{PACKAGE}.addon.blender.{name}"]


def set_pixels(image: bpy.types.Image, top_down: np.ndarray) -> None:
    image.pixels.foreach_set(np.ascontiguousarray(top_down[::-1]).ravel())
    image.update()


# ---- the recording layout ----------------------------------------------------------------------------------------


class UiRecorder:
    """A stand-in for UILayout: records each prop, operator and label as the artist would read it, and the problems
    with it (no tooltip, not Title Case, "Colour", an icon Blender lacks). `where` says which panel and state."""

    def __init__(self, log: dict, where: str, rows: bool = False) -> None:
        object.__setattr__(self, "log", log)
        object.__setattr__(self, "where", where)
        object.__setattr__(self, "rows", rows)

    def __setattr__(self, name: str, value: object) -> None:  # row.scale_y = ..., operator(...).list_id = ...
        pass

    def problem(self, text: str) -> None:
        self.log["problems"].add(f"{text} (in {self.where})")

    def check_text(self, what: str, text: str, title: bool) -> None:
        ui_text = module("ui_text")
        if title and not ui_text.is_title_case(text):
            self.problem(f"{what} {text!r} is not Title Case: {ui_text.title_case_problems(text)}")
        if ui_text.british_spellings(text):
            self.problem(f"{what} {text!r} says {ui_text.british_spellings(text)}: Blender says Color, Gray, ...")

    def check_icon(self, icon: str) -> None:
        if icon and icon not in ICONS:
            self.problem(f"icon {icon!r} is not one of Blender's")

    def check_property(self, data: object, prop_name: str, text: str | None, expand: bool = False) -> None:
        prop = data.bl_rna.properties[prop_name]
        what = f"property {data.bl_rna.identifier}.{prop_name}"
        self.log["props"].add(f"{data.bl_rna.identifier}.{prop_name}")
        if not prop.description or prop.description in DEFAULT_DESCRIPTIONS:
            self.problem(f"{what} has no tooltip")
        self.check_text(f"{what}'s tooltip", prop.description, title=False)
        self.check_text(f"{what}'s name", prop.name if text is None else text, title=True)
        if prop.type == "ENUM":
            for item in prop.enum_items:
                self.check_text(f"{what}'s item", item.name, title=True)
                self.check_text(f"{what}'s item tooltip", item.description, title=False)
                if expand and not item.description:
                    self.problem(f"{what}'s item {item.name!r} has no tooltip")
                self.check_icon(item.icon if item.icon != "NONE" else "")

    def check_operator(self, idname: str, text: str | None) -> None:
        group, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, group), name).get_rna_type()  # raises for an unknown operator
        self.log["operators"].add(idname)
        what = f"operator {idname}"
        if not rna.description:
            self.problem(f"{what} has no tooltip")
        self.check_text(f"{what}'s tooltip", rna.description, title=False)
        self.check_text(f"{what}'s label", rna.name if text is None else text, title=True)

    def __getattr__(self, name: str):
        def call(*args, **kwargs) -> UiRecorder:
            icon = kwargs.get("icon", "")
            self.check_icon(icon if icon != "NONE" else "")
            for key in ("heading", "text"):
                if name in ("row", "column", "box") and kwargs.get(key):
                    self.check_text("heading", kwargs[key], title=True)
            if name == "label":
                text = kwargs.get("text", "")
                self.log["labels"].append(text)
                # A label without an icon is a heading: Title Case. With one it is a message (a sentence); data
                # (sizes, frames, counts) is neither.
                heading = not self.rows and (not icon or icon == "NONE")
                self.check_text("label", text, title=heading and not any(c.isdigit() for c in text))
            elif name in ("prop", "prop_search"):
                self.check_property(args[0], args[1], kwargs.get("text"), bool(kwargs.get("expand")))
            elif name == "template_ID":
                self.check_property(args[0], args[1], "")
                for key in ("new", "open"):
                    if kwargs.get(key):
                        self.log["template_ops"].add(kwargs[key])
            elif name in ("operator", "operator_menu_enum"):
                self.check_operator(args[0], kwargs.get("text"))
                self.log["calls"].append(f"operator:{args[0]}")
            return UiRecorder(self.log, self.where, self.rows)

        return call


def new_log() -> dict:
    return {"problems": set(), "props": set(), "operators": set(), "labels": [], "calls": [], "template_ops": set()}


def image_panels() -> list[type]:
    return [getattr(bpy.types, n) for n in dir(bpy.types) if n.startswith("REGIA_PT_") and "storyboard" not in n]


def storyboard_panels() -> list[type]:
    return [getattr(bpy.types, n) for n in dir(bpy.types) if n.startswith("REGIA_PT_") and "storyboard" in n]


def draw_panels(log: dict, panels: list[type], context: object, where: str) -> None:
    for panel in panels:
        if not hasattr(panel, "poll") or panel.poll(context):
            recorder = UiRecorder(log, f"{panel.__name__}, {where}")
            recorder.check_text("panel", panel.bl_label, title=True)
            panel.draw(SimpleNamespace(layout=recorder), context)


def draw_rows(log: dict, lists: list[tuple[object, str]], context: object, where: str) -> None:
    """List rows: their labels are data (a name, frames, a failed shot's reason), not headings."""
    for data, prop in lists:
        for item in getattr(data, prop):
            recorder = UiRecorder(log, f"{item.bl_rna.identifier} row, {where}", rows=True)
            bpy.types.REGIA_UL_items.draw_item(None, context, recorder, data, item, 0, data, "", 0)


# ---- an image editor, as the artist has one ---------------------------------------------------------------------


def image_editor() -> tuple[bpy.types.Window, bpy.types.Area, bpy.types.Region]:
    """The startup screen's biggest area, turned into an image editor."""
    window = bpy.context.window_manager.windows[0]
    area = max(window.screen.areas, key=lambda a: a.width * a.height)
    area.type = "IMAGE_EDITOR"
    region = next(r for r in area.regions if r.type == "WINDOW")
    return window, area, region


def editor_context(area: bpy.types.Area | None, width: int = SIDEBAR_PX) -> SimpleNamespace:
    """What a panel in the editor's sidebar gets as its context."""
    space = area.spaces.active if area is not None else None
    return SimpleNamespace(scene=bpy.context.scene, space_data=space, area=area, region=SimpleNamespace(width=width))


def in_editor(op, **kwargs) -> set[str]:
    """Press an operator's button in the image editor."""
    window, area, region = image_editor()
    with bpy.context.temp_override(window=window, area=area, region=region):
        return op(**kwargs)


def build_target() -> bpy.types.Image:
    rng = np.random.default_rng(0)
    target = bpy.data.images.new("photo", W, H)
    pixels = np.ones((H, W, 4), dtype=np.float32)
    pixels[..., :3] = rng.random((H, W, 3))
    set_pixels(target, pixels)
    bpy.data.images.new("stripes", 16, 16)
    mask = bpy.data.masks.new(name="Layers")
    layer = mask.layers.new(name="sky")
    spline = layer.splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(0, 0.6), (1, 0.6), (1, 1), (0, 1)], strict=True):
        point.co, point.handle_type = co, "VECTOR"
    spline.use_cyclic = True
    return target


def show(area: bpy.types.Area, image: bpy.types.Image) -> None:
    area.spaces.active.image = image


def seen_by_panel(area: bpy.types.Area) -> dict:
    """What the image editor's panels work on now, and whether they show Cancel."""
    context = editor_context(area)
    target = blender("owners").target_image(context)
    log = new_log()
    draw_panels(log, image_panels(), context, "target check")
    return {
        "editor": area.spaces.active.image.name if area.spaces.active.image else None,
        "target": target.name if target is not None else None,
        "regions": [r.name for r in target.regia.regions] if target is not None else [],
        "cancel": "operator:regia.cancel" in log["calls"],
        "generate": "operator:regia.generate" in log["calls"],
    }


# ---- phases --------------------------------------------------------------------------------------------------------


def phase_target(target: bpy.types.Image) -> None:
    """With no Target set, Regia's own images in the editor never take the target's place."""
    _, area, _ = image_editor()
    scene, out = bpy.context.scene, {}
    scene.regia_target = None
    show(area, target)
    out["before"] = seen_by_panel(area)
    assert in_editor(bpy.ops.regia.region_add_mask_layer, mask="Layers") == {"FINISHED"}
    scene.regia_target = None  # as if the artist had never set it: only the editor's image says which
    show(area, target)
    assert in_editor(bpy.ops.regia.region_add_paint, name="face") == {"FINISHED"}
    out["paint"] = seen_by_panel(area)
    face = target.regia.regions["face"]
    paint = np.zeros((H, W, 4), dtype=np.float32)
    paint[..., 3], paint[10:20, 10:30, :3] = 1.0, 1.0
    set_pixels(face.paint_image, paint)
    # The paint layer in the editor maps back to its target even with no Target: Regia marked it as its own.
    scene.regia_target = None
    out["paint_unpinned"] = seen_by_panel(area)
    scene.regia_target = None
    show(area, target)
    target.regia.active_region = 0
    assert in_editor(bpy.ops.regia.region_show_mask) == {"FINISHED"}
    out["mask"] = seen_by_panel(area)
    scene.regia_target = None
    show(area, target)
    assert in_editor(bpy.ops.regia.guide_add, kind="SCRIBBLE") == {"FINISHED"}
    assert in_editor(bpy.ops.regia.guide_new_canvas) == {"FINISHED"}
    out["canvas"] = seen_by_panel(area)
    # A job: Generate with no Target, then the live preview replaces the target in the editor.
    jobs, image_jobs = blender("jobs"), blender("image_jobs")
    jobs.ensure_engine = lambda: None  # no engine here: the job waits for one, as while a managed one starts
    image_jobs.poll = lambda: None
    scene.regia_target = None
    show(area, target)
    assert in_editor(bpy.ops.regia.generate) == {"FINISHED"}
    out["queued"] = seen_by_panel(area)
    job = jobs.TRACKER.jobs[image_jobs.key(target)]
    png = module("png_codec").encode_png(np.full((H, W, 3), 128, dtype=np.uint8))
    image_jobs.VIEW.preview(job, png)
    out["preview"] = seen_by_panel(area)
    scene.regia_target = None
    out["preview_unpinned"] = seen_by_panel(area)
    pressed = in_editor(bpy.ops.regia.cancel)  # with the preview in the editor
    image_jobs.cancel(target)
    out["cancelled"] = [sorted(pressed), target.regia_job.state, image_jobs.is_running(target)]
    # A shot's paint layer (no target) shown in the editor is not a target of its own.
    shot_layer = blender("images").new_paint_layer("Shot 1 paint 1", 32, 18, target=None)
    scene.regia_target = None
    show(area, shot_layer)
    out["shot_layer"] = seen_by_panel(area)["target"]
    scene.regia_target = target
    show(area, target)
    emit(phase="target", **out)


def phase_paint_new(target: bpy.types.Image) -> None:
    """The paint layer's New makes an image the size of what the region masks: the target, or a storyboard shot."""
    settings = target.regia
    region = settings.regions.add()
    region.name, region.source = "hand", "PAINT"
    settings.active_region = len(settings.regions) - 1
    assert in_editor(bpy.ops.regia.paint_layer_new) == {"FINISHED"}
    made = region.paint_image
    out = {
        "size": list(made.size),
        "target": made.get("regia_target"),
        "editor": image_editor()[1].spaces.active.image.name,
    }
    settings.regions.remove(len(settings.regions) - 1)
    board = bpy.context.scene.regia_storyboard
    board.width, board.height = 96, 54
    assert bpy.ops.regia.list_add(list_id="SHOTS") == {"FINISHED"}
    shot = board.shots[board.active_shot]
    shot_region = shot.regions.add()
    shot_region.name, shot_region.source = "sky", "PAINT"
    shot.active_region = 0
    assert bpy.ops.regia.paint_layer_new(list_id="SHOT_REGIONS") == {"FINISHED"}
    out["shot_size"] = list(shot_region.paint_image.size)
    # Generate builds the job: no size mismatch from a New paint layer.
    region = settings.regions["face"]
    region.paint_image = None
    settings.active_region = list(settings.regions).index(region)
    assert in_editor(bpy.ops.regia.paint_layer_new) == {"FINISHED"}
    paint = np.zeros((H, W, 4), dtype=np.float32)
    paint[..., 3], paint[10:20, 10:30, :3] = 1.0, 1.0
    set_pixels(region.paint_image, paint)
    try:
        module("spec_builder").build_job(blender("inputs").job_input(target))
        out["builds"] = "ok"
    except Exception as error:  # the test reports what it was
        out["builds"] = str(error)
    board.shots.remove(len(board.shots) - 1)
    emit(phase="paint_new", **out)


def add_every_guide(list_id: str) -> None:
    kinds = [item.identifier for item in bpy.ops.regia.guide_add.get_rna_type().properties["kind"].enum_items]
    for kind in kinds:
        assert bpy.ops.regia.guide_add(list_id=list_id, kind=kind, text="x", axis="horizontal") == {"FINISHED"}


def draw_image_states(target: bpy.types.Image, log: dict) -> None:
    """The image editor's panels: no target; a target with regions of every source and mode and guides of every
    kind, each active in turn; the Diffusion generator; a job's states and errors."""
    _, area, _ = image_editor()
    scene = bpy.context.scene
    scene.regia_target = None
    show(area, bpy.data.images["stripes"])
    area.spaces.active.image = None
    draw_panels(log, image_panels(), editor_context(area), "no target")
    scene.regia_target = target
    show(area, target)
    settings = target.regia
    assert bpy.ops.regia.region_add_color_key() == {"FINISHED"}
    settings.regions[0].mode, settings.regions[-1].mode = "embolden", "keep"
    for list_id, index in (("REGION_GUIDES", 0), ("GUIDES", None)):
        if index is not None:
            settings.active_region = index
        add_every_guide(list_id)
    context = editor_context(area)
    for generator in ("pixels", "diffusion"):
        settings.generator = generator
        for index, region in enumerate(settings.regions):
            settings.active_region = index
            for guide_index in range(max(1, len(region.guides))):
                region.active_guide = guide_index
                settings.active_guide = min(guide_index, len(settings.guides) - 1)
                draw_panels(log, image_panels(), context, f"{generator}, region {region.name!r}")
        draw_rows(log, [(settings, "regions"), (settings.regions[0], "guides"), (settings, "guides")], context,
                  generator)  # fmt: skip
    settings.generator = "pixels"
    status = target.regia_job
    for state, kind, message in (("RUNNING", "NONE", "Step 3 of 20"), ("DONE", "NONE", "Done: photo.regia.001"),
                                 ("FAILED", "UNREACHABLE", "No engine"), ("FAILED", "MODELS", "CLIP model: missing"),
                                 ("FAILED", "INPUT", "Region 'sky' mask: the mask is empty"),
                                 ("CANCELLED", "NONE", "Cancelled")):  # fmt: skip
        status.state, status.error_kind, status.message = state, kind, message
        draw_panels(log, image_panels(), context, f"job {state} {kind}")
    status.state, status.error_kind, status.message = "IDLE", "NONE", ""


def draw_storyboard_states(log: dict) -> None:
    """The storyboard's panels (Sequencer and Scene properties), with shots in every state."""
    scene, board = bpy.context.scene, bpy.context.scene.regia_storyboard
    context = SimpleNamespace(scene=scene, space_data=None, area=None, region=SimpleNamespace(width=SIDEBAR_PX))
    draw_panels(log, storyboard_panels(), context, "no shots")
    for _ in range(3):
        assert bpy.ops.regia.list_add(list_id="SHOTS") == {"FINISHED"}
    assert bpy.ops.regia.list_add(list_id="STYLE_IMAGES") == {"FINISHED"}
    board.style_images[0].image = bpy.data.images["stripes"]
    shot = board.shots[0]
    shot.use_blockout = True
    board.active_shot = 0
    add_every_guide("SHOT_GUIDES")
    assert bpy.ops.regia.storyboard_region_add() == {"FINISHED"}
    add_every_guide("SHOT_REGION_GUIDES")
    version = shot.versions.add()
    version.image, version.seed, shot.image = bpy.data.images["stripes"], "7", bpy.data.images["stripes"]
    board.shots[1].job.state, board.shots[1].job.fraction = "RUNNING", 0.4
    board.shots[2].job.state, board.shots[2].job.error_kind = "FAILED", "INPUT"
    board.shots[2].job.message = "Shot 'Shot 2' style image: no image"
    board.message = "3 shots queued; this message is long enough that it has to wrap in a narrow sidebar panel"
    for generator in ("pixels", "diffusion"):
        board.generator = generator
        for index in range(len(board.shots)):
            board.active_shot = index
            for guide_index in range(max(1, len(board.shots[index].guides))):
                board.shots[index].active_guide = guide_index
                draw_panels(log, storyboard_panels(), context, f"{generator}, shot {index}")
    lists = [(board, "shots"), (board, "style_images")] + [(s, "versions") for s in board.shots]
    draw_rows(log, lists + [(s, "guides") for s in board.shots], context, "storyboard")
    board.generator = "pixels"


def draw_texture_states(log: dict) -> None:
    """The 3D Viewport's Regia Texture panels and the material properties' one: an object without a texture, then
    with one (a region per material slot, each active in turn)."""
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    for name in ("Wood", "Sky"):
        cube.data.materials.append(bpy.data.materials.new(name))
    panels = [p for p in image_panels() if "texture" in p.__name__]
    viewport, properties = (
        SimpleNamespace(scene=bpy.context.scene, space_data=SimpleNamespace(type=space), object=cube, area=None,
                        region=SimpleNamespace(width=SIDEBAR_PX))
        for space in ("VIEW_3D", "PROPERTIES")
    )  # fmt: skip
    draw_panels(log, panels, viewport, "object without a texture")
    assert bpy.ops.regia.texture_new(size="256") == {"FINISHED"}
    settings = cube.regia_texture.regia
    settings.regions[1].mode = "keep"
    for index in range(len(settings.regions)):
        settings.active_region = cube.active_material_index = index
        draw_panels(log, panels, viewport, f"texture, slot {index}")
        draw_panels(log, panels, properties, f"material properties, slot {index}")
    draw_rows(log, [(settings, "regions")], viewport, "texture")


def operator_problems() -> list[str]:
    """Every Regia operator: a label in Title Case and a tooltip; each property it shows in the Redo panel (not
    hidden) has a tooltip and a name in Title Case."""
    ui_text, problems = module("ui_text"), []
    for name in dir(bpy.ops.regia):
        rna = getattr(bpy.ops.regia, name).get_rna_type()
        if not ui_text.is_title_case(rna.name) or not rna.description:
            problems.append(f"operator regia.{name}: label {rna.name!r}, tooltip {rna.description!r}")
        for prop in rna.properties:
            if prop.identifier in FILE_BROWSER or prop.identifier.startswith("filter_") or prop.is_hidden:
                continue
            if (
                not prop.description
                or not ui_text.is_title_case(prop.name)
                or ui_text.british_spellings(prop.name + prop.description)
            ):
                problems.append(
                    f"operator regia.{name} property {prop.identifier}: {prop.name!r}, {prop.description!r}"
                )
    return problems


def phase_tooltips(target: bpy.types.Image) -> None:
    log = new_log()
    draw_image_states(target, log)
    draw_storyboard_states(log)
    draw_texture_states(log)
    options = {}
    for name in dir(bpy.types):
        if name.startswith("REGIA_OT_"):
            cls = getattr(bpy.types, name)
            options[cls.bl_idname if hasattr(cls, "bl_idname") else name] = sorted(getattr(cls, "bl_options", ()))
    panels = {p.__name__: [p.bl_label, getattr(p, "bl_parent_id", ""), sorted(getattr(p, "bl_options", ()))]
              for p in image_panels() + storyboard_panels()}  # fmt: skip
    emit(
        phase="tooltips",
        problems=sorted(log["problems"]),
        operator_problems=operator_problems(),
        props=sorted(log["props"]),
        operators=sorted(log["operators"]),
        template_ops=sorted(log["template_ops"]),
        bl_options=options,
        panels=panels,
    )


def phase_errors(target: bpy.types.Image) -> None:
    """Errors wrap to the sidebar's width (narrow and wide, UI scale 1) and offer Preferences where the fix is."""
    _, area, _ = image_editor()
    bpy.context.scene.regia_target = target
    status = target.regia_job
    message = (
        "Job failed: Region 'sky', Style guide 2: the image is 11585x11585 (134.2 megapixels), over the size this "
        "engine decodes; /home/someone/models/a-very-long-name-of-a-checkpoint-file.safetensors"
    )
    out = {}
    for kind in ("UNREACHABLE", "MODELS", "FAILED"):
        status.state, status.error_kind, status.message = "FAILED", kind, message
        for width in (SIDEBAR_PX, 600):
            log = new_log()
            draw_panels(log, [bpy.types.REGIA_PT_main], editor_context(area, width), "errors")
            shown = [label for label in log["labels"] if label and label != "Open or pick an image to work on"]
            out[f"{kind} {width}"] = {
                "longest": max(len(label) for label in shown),
                "lines": len(shown),
                "joined": " ".join(shown),
                "preferences": "operator:preferences.addon_show" in log["calls"],
            }
    out["fits"] = module("ui_text").chars_that_fit(SIDEBAR_PX, 1.0)
    status.state, status.error_kind, status.message = "IDLE", "NONE", ""
    board = bpy.context.scene.regia_storyboard
    board.message = message
    log = new_log()
    context = SimpleNamespace(scene=bpy.context.scene, space_data=None, area=None, region=SimpleNamespace(width=280))
    draw_panels(log, [bpy.types.REGIA_PT_sequencer_storyboard], context, "storyboard errors")
    out["storyboard_longest"] = max(len(label) for label in log["labels"] if label)
    board.message = ""
    emit(phase="errors", **out)


def phase_guide_image(target: bpy.types.Image) -> None:
    """Add Guide for an image kind asks for the image at once (a search popup of the artist's images): a style guide
    on a region is Add Guide, Style, the image; a kind without an image is added at once."""
    scene, settings = bpy.context.scene, target.regia
    scene.regia_target = target
    settings.active_region = 0
    guides = blender("guides")
    popups: list[str] = []
    context = SimpleNamespace(window_manager=SimpleNamespace(invoke_search_popup=lambda op: popups.append(op.kind)))
    out = {}
    # bpy in background never invokes (it executes): the button's invoke is called as Blender would call it.
    pressed = SimpleNamespace(kind="STYLE", image="", execute=lambda context: {"FINISHED"})
    out["style_invoked"] = sorted(guides.REGIA_OT_guide_add.invoke(pressed, context, None))
    pressed = SimpleNamespace(kind="PALETTE", image="", execute=lambda context: {"FINISHED"})
    out["palette_invoked"] = sorted(guides.REGIA_OT_guide_add.invoke(pressed, context, None))
    out["popups"] = popups
    out["choices"] = [name for name, _label, _tip in guides._reference_images(None, None)]
    before = len(settings.regions[0].guides)
    assert bpy.ops.regia.guide_add(kind="STYLE", image_choice="stripes") == {"FINISHED"}  # the popup's answer
    added = settings.regions[0].guides[-1]
    out["added"] = [len(settings.regions[0].guides) - before, added.kind, added.image.name if added.image else None]
    settings.regions[0].guides.remove(len(settings.regions[0].guides) - 1)
    emit(phase="guide_image", **out)


def phase_storyboard(target: bpy.types.Image) -> None:
    """Shots from Markers asks before removing shots no marker makes; a failed shot says why in the list; Open in
    Image Editor and Regenerate are greyed out when they cannot work; the message box clears when jobs end."""
    scene, board, out = bpy.context.scene, bpy.context.scene.regia_storyboard, {}
    operators, shot_jobs, jobs = blender("storyboard_shots"), blender("shot_jobs"), blender("jobs")
    board.shots.clear()
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    marker = scene.timeline_markers.new("A", frame=1)
    marker.camera = camera
    assert bpy.ops.regia.list_add(list_id="SHOTS") == {"FINISHED"}
    board.shots[-1].name = "By Hand"
    ranges, _ = operators.marker_ranges(scene)
    out["replaced"] = operators.shots_replaced(board, ranges)
    asked: list[str] = []
    operators.confirm = lambda context, operator, event, message: asked.append(message) or {"CANCELLED"}
    # bpy in background never invokes (it executes): the button's invoke is called as Blender would call it.
    pressed = SimpleNamespace(replace=True, bl_label="Shots from Markers", execute=lambda context: {"FINISHED"})
    out["invoked"] = sorted(operators.REGIA_OT_storyboard_from_markers.invoke(pressed, bpy.context, None))
    out["asked"] = asked
    out["after_invoke"] = [shot.name for shot in board.shots]  # nothing goes before the artist says so
    assert bpy.ops.regia.storyboard_from_markers(replace=False) == {"FINISHED"}
    out["kept"] = sorted(shot.name for shot in board.shots)
    # Polls: no image yet, then a job running.
    board.active_shot = 0
    shot = board.shots[0]
    out["open_without_image"] = bpy.ops.regia.storyboard_open_shot.poll()
    shot.image = bpy.data.images["stripes"]
    out["open_with_image"] = bpy.ops.regia.storyboard_open_shot.poll()
    out["regenerate_idle"] = bpy.ops.regia.storyboard_regenerate_shot.poll()
    blender("storyboard_inputs").ensure_uids(board)
    for other in board.shots:
        jobs.TRACKER.submit(shot_jobs.key(scene, other.uid), shot_jobs.VIEW, {"steps": 5}, {})
    board.message = f"{len(board.shots)} shots queued"
    out["regenerate_running"] = bpy.ops.regia.storyboard_regenerate_shot.poll()
    shot_jobs.cancel(scene, board.shots[0].uid)
    out["message_one_left"] = board.message
    shot_jobs.cancel(scene)
    out["message_all_ended"] = board.message
    # A failed shot's reason, in its row.
    shot.job.state, shot.job.error_kind, shot.job.message = "FAILED", "INPUT", "Shot 'A' style image: no image"
    log = new_log()
    draw_rows(log, [(board, "shots")], SimpleNamespace(scene=scene), "failed shot")
    out["row_labels"] = log["labels"]
    emit(phase="storyboard", **out)


def main() -> None:
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True)
    assert result == {"FINISHED"}, result
    image_editor()
    target = build_target()
    for phase in PHASES:
        globals()[f"phase_{phase}"](target)
    import addon_utils

    addon_utils.disable(PACKAGE, default_set=True)
    print("REGIA-OK")


main()
