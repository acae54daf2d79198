"""Add-on preferences: how to reach the engine (managed local process or remote server), the models it reports on
(CLIP pairs, the Diffusion Models list), and its status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty

from ..diffusion import MODEL_SUFFIXES, is_random, label_for, model_path_problem
from . import connection, install_engine
from .clip_models import draw_clip_models
from .install_operators import draw_install
from .lists import ListSpec, draw_list, list_row, register_list
from .paths import EXTENSION_PACKAGE, EXTENSION_ROOT

_PATH_TOOLTIP = "A diffusers folder (it holds model_index.json), or a .safetensors or .ckpt file (SD 1.x, 2.x, SDXL)"


class RegiaDiffusionModel(bpy.types.PropertyGroup):
    """One entry of the Diffusion Models list: what Settings calls it, and where it is."""

    name: StringProperty(
        name="Label", default="Diffusion Model", description="What the Settings' Diffusion Model choice shows"
    )
    path: StringProperty(name="Path", subtype="FILE_PATH", description=_PATH_TOOLTIP)


class RegiaPreferences(bpy.types.AddonPreferences):
    bl_idname = EXTENSION_PACKAGE

    engine_mode: EnumProperty(
        name="Engine",
        items=[
            ("MANAGED", "Managed Local", "Regia starts the engine as a Python process on this computer"),
            ("REMOTE", "Remote", "Connect to an engine started elsewhere (`python -m engine serve`)"),
        ],
        default="MANAGED",
        description="Where the engine runs",
    )
    python_path: StringProperty(
        name="Custom Python",
        subtype="FILE_PATH",
        description="Optional: a Python with the engine's requirements, used instead of the environment Install "
        "Engine makes (leave empty to use that one)",
    )
    install_python: StringProperty(
        name="Installer Python",
        subtype="FILE_PATH",
        description="The Python 3.11 that makes the engine's environment (leave empty to use Blender's own)",
    )
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "CUDA, then MPS, then CPU"),
            ("cpu", "CPU", "The processor: works everywhere, slowest"),
            ("cuda", "CUDA", "An NVIDIA graphics card"),
            ("mps", "MPS", "Apple silicon's graphics (Metal)"),
        ],
        default="auto",
        description="What the managed engine computes on",
    )
    start_with_blender: BoolProperty(
        name="Start with Blender",
        default=True,
        description="Start the engine in the background when Blender starts (once it is installed), so the first "
        "Generate does not wait for it to load",
    )
    clip_models: StringProperty(
        name="CLIP Models",
        description="NAME:WEIGHTS pairs the managed engine reports on (present or missing), separated by commas, "
        "e.g. ViT-B-32:laion2b_s34b_b79k",
    )
    diffusion_models: CollectionProperty(
        type=RegiaDiffusionModel, name="Diffusion Models",
        description="The diffusion models Settings can choose from; the managed engine is started with each",
    )  # fmt: skip
    active_diffusion_model: IntProperty(
        name="Active Diffusion Model", description="The entry whose label and path are shown below the list"
    )
    remote_url: StringProperty(
        name="URL",
        default="http://127.0.0.1:8765",
        description="The remote engine's address: http://HOST:PORT of a `python -m engine serve` on another computer",
    )
    remote_token: StringProperty(
        name="Token",
        subtype="PASSWORD",
        description="The token the remote engine was started with (its REGIA_ENGINE_TOKEN); empty when it needs none",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_mode", expand=True)
        if self.engine_mode == "MANAGED":
            draw_install(layout, self)
            layout.prop(self, "python_path")
            layout.prop(self, "device")
            layout.prop(self, "start_with_blender")
            draw_clip_models(layout, self)
            layout.label(text=f"Engine source: {EXTENSION_ROOT / 'engine'}")
        else:
            layout.prop(self, "remote_url")
            layout.prop(self, "remote_token")
        draw_diffusion_models(layout, self)
        draw_engine_status(layout)


def draw_diffusion_models(layout: bpy.types.UILayout, prefs: Any) -> None:
    """The Diffusion Models list, its buttons, and the active entry's label and path."""
    box = layout.box()
    box.label(text="Diffusion Models", icon="MOD_NOISE")
    if prefs.engine_mode == "REMOTE":
        box.label(text="Paths on the engine's computer, as it was started with --diffusion PATH", icon="INFO")
    else:
        box.label(text="The managed engine is started with each (restart it after a change)", icon="INFO")
    draw_list(box, "DIFFUSION_MODELS", prefs, rows=3, add=_model_adders)
    if 0 <= prefs.active_diffusion_model < len(prefs.diffusion_models):
        entry = prefs.diffusion_models[prefs.active_diffusion_model]
        col = box.column()
        col.prop(entry, "name")
        col.prop(entry, "path")
        problem = model_path_problem(connection.model_path(entry.path))
        if problem:
            col.label(text=problem, icon="ERROR")


def _model_adders(col: bpy.types.UILayout) -> None:
    col.operator("regia.diffusion_model_add_file", text="", icon="FILE_NEW")
    col.operator("regia.diffusion_model_add_folder", text="", icon="FILE_FOLDER")
    col.operator("regia.list_add", text="", icon="ADD").list_id = "DIFFUSION_MODELS"


@list_row("RegiaDiffusionModel")
def _model_row(layout: bpy.types.UILayout, data: Any, entry: Any) -> None:
    row = layout.row(align=True)
    path = connection.model_path(entry.path)
    icon = "MOD_NOISE" if is_random(path) else "FILE_FOLDER" if Path(path).is_dir() else "FILE_BLANK"
    row.prop(entry, "name", text="", emboss=False, icon=icon)
    row.label(text=Path(path).name if path and not is_random(path) else path or "(no path)")
    if model_path_problem(path):
        op = row.operator("regia.diffusion_model_problem", text="", icon="ERROR", emboss=False)
        op.path = path


def _add_entry(prefs: Any, path: str) -> None:
    entry = prefs.diffusion_models.add()
    entry.path = path
    entry.name = label_for(path)
    prefs.active_diffusion_model = len(prefs.diffusion_models) - 1


def _on_add(context: bpy.types.Context, prefs: Any, entry: Any) -> None:
    entry.name = f"Diffusion Model {len(prefs.diffusion_models)}"


register_list(
    "DIFFUSION_MODELS",
    ListSpec(
        noun="diffusion model",
        owner=lambda context: connection.preferences(),
        collection="diffusion_models",
        index="active_diffusion_model",
        remove_note="the file or folder stays where it is",
        on_add=_on_add,
    ),
)


def _add_chosen(operator: bpy.types.Operator, path: str, nothing: str) -> set[str]:
    """Add what the file browser chose to the Diffusion Models list; a path problem is a warning, not a refusal."""
    if not path:
        operator.report({"ERROR"}, nothing)
        return {"CANCELLED"}
    _add_entry(connection.preferences(), path)
    problem = model_path_problem(path)
    if problem:
        operator.report({"WARNING"}, problem)
    return {"FINISHED"}


class REGIA_OT_diffusion_model_add_file(bpy.types.Operator):
    """Add a diffusion model file (.safetensors or .ckpt: SD 1.x, 2.x or SDXL) to the Diffusion Models list"""

    bl_idname = "regia.diffusion_model_add_file"
    bl_label = "Add File"
    bl_options = {"REGISTER", "INTERNAL"}
    filepath: StringProperty(subtype="FILE_PATH", description="The model file")
    filter_glob: StringProperty(default=";".join(f"*{s}" for s in MODEL_SUFFIXES), options={"HIDDEN"})

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        return _add_chosen(self, bpy.path.abspath(self.filepath).strip(), "No file chosen")


class REGIA_OT_diffusion_model_add_folder(bpy.types.Operator):
    """Add a diffusers folder (the one holding model_index.json) to the Diffusion Models list"""

    bl_idname = "regia.diffusion_model_add_folder"
    bl_label = "Add Folder"
    bl_options = {"REGISTER", "INTERNAL"}
    directory: StringProperty(subtype="DIR_PATH", description="The diffusers folder")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        return _add_chosen(self, bpy.path.abspath(self.directory).strip().rstrip("/\\"), "No folder chosen")


class REGIA_OT_diffusion_model_problem(bpy.types.Operator):
    """What is wrong with this diffusion model's path"""

    bl_idname = "regia.diffusion_model_problem"
    bl_label = "Model Path Problem"
    bl_options = {"INTERNAL"}
    path: StringProperty(name="Path", description="The entry's path", options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def description(cls, context: bpy.types.Context, properties: Any) -> str:
        return model_path_problem(properties.path) or "The path is a diffusion model"

    def execute(self, context: bpy.types.Context) -> set[str]:
        self.report({"WARNING"}, model_path_problem(self.path) or "The path is a diffusion model")
        return {"FINISHED"}


def draw_engine_status(layout: bpy.types.UILayout) -> None:
    """The engine's status line and the buttons that make sense now: Install Engine while there is no Python to
    start it with, Start when it is stopped, Stop and Restart while it runs; Remote: its status and Check."""
    status = connection.status
    icon = {"ready": "CHECKMARK", "starting": "SORTTIME", "failed": "ERROR", "remote": "URL"}.get(status.state, "X")
    box = layout.box()
    for i, line in enumerate(_wrap(status.message, 70)):
        box.label(text=line, icon=icon if i == 0 else "BLANK1")
    row = box.row(align=True)
    if connection.is_managed():
        if status.state in ("starting", "ready"):
            row.operator("regia.engine_stop", icon="QUIT")
            row.operator("regia.engine_restart", icon="FILE_REFRESH")
        elif install_engine.running():
            row.operator("regia.engine_install_cancel", icon="CANCEL")
        elif connection.python_path(connection.preferences()):
            row.operator("regia.engine_start", icon="PLAY")
        else:
            row.operator("regia.engine_install", icon="IMPORT")
        if status.state != "ready":
            return
    row.operator("regia.engine_check", icon="URL")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines or [""]


CLASSES: tuple[type, ...] = (
    RegiaDiffusionModel,
    RegiaPreferences,
    REGIA_OT_diffusion_model_add_file,
    REGIA_OT_diffusion_model_add_folder,
    REGIA_OT_diffusion_model_problem,
)
