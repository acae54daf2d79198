"""The CLIP models of Regia's preferences: each NAME:WEIGHTS pair with whether the engine has its weights (from
/health), Download for a pretrained tag it lacks (addon/model_fetch.py, with progress and Cancel), Add File for a
checkpoint; and the CLIP Model choice that Settings and the storyboard's Style offer from that list."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from ..diffusion import clip_models
from ..model_fetch import FetchTask, downloadable
from . import connection
from .install_engine import online
from .paths import EXTENSION_ROOT
from .redraw import redraw

POLL_SECONDS = 0.5
NONE = "NONE"
_fetches: dict[str, FetchTask] = {}  # NAME:TAG -> its download, while it runs and after it ends (its outcome)


def model_state(pair: str) -> str:
    """present, missing or unknown (no /health yet), as the engine last reported."""
    health = connection.status.health or {}
    models = health.get("models") or {}
    if pair in (models.get("present") or []):
        return "present"
    return "missing" if pair in (models.get("missing") or []) else "unknown"


def poll_fetches() -> float | None:
    """The downloads' timer: ask the engine again when one ends (it then reports the model present)."""
    for task in list(_fetches.values()):
        if task.state != "RUNNING" and not task.reported:
            task.reported = True
            if task.state == "DONE":
                connection.refresh_health()
    redraw(("PREFERENCES",))
    return POLL_SECONDS if any(task.state == "RUNNING" for task in _fetches.values()) else None


class REGIA_OT_clip_download(bpy.types.Operator):
    """Download this CLIP model's weights into the engine's model cache (once; jobs then find them offline)"""

    bl_idname = "regia.clip_download"
    bl_label = "Download"
    model: StringProperty(name="Model", description="NAME:TAG of the model", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not online():
            self.report({"ERROR"}, "Downloading needs Allow Online Access (Preferences > System > Network)")
            return {"CANCELLED"}
        python = connection.python_path(connection.preferences())
        if not python:
            self.report({"ERROR"}, "Install the engine first (Install Engine, above), or set a Custom Python")
            return {"CANCELLED"}
        running = _fetches.get(self.model)
        if running is not None and running.state == "RUNNING":
            return {"CANCELLED"}
        _fetches[self.model] = FetchTask(python, EXTENSION_ROOT, self.model).start()
        if not bpy.app.timers.is_registered(poll_fetches):
            bpy.app.timers.register(poll_fetches, first_interval=POLL_SECONDS)
        return {"FINISHED"}


class REGIA_OT_clip_download_cancel(bpy.types.Operator):
    """Stop this download (what was fetched is kept for the next try)"""

    bl_idname = "regia.clip_download_cancel"
    bl_label = "Cancel Download"
    model: StringProperty(name="Model", description="NAME:TAG of the model", options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        task = _fetches.get(self.model)
        if task is not None:
            task.cancel()
        return {"FINISHED"}


class REGIA_OT_clip_add_file(bpy.types.Operator):
    """Add a CLIP checkpoint file (.pt, .bin, .safetensors) to the CLIP models, under its open_clip architecture"""

    bl_idname = "regia.clip_add_file"
    bl_label = "Add CLIP File"
    filepath: StringProperty(name="File", subtype="FILE_PATH", description="The checkpoint file")
    filter_glob: StringProperty(default="*.pt;*.pth;*.bin;*.safetensors", options={"HIDDEN"})
    architecture: StringProperty(
        name="Architecture", default="ViT-B-32", description="The open_clip model the checkpoint is for, e.g. ViT-B-32"
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = bpy.path.abspath(self.filepath)
        if not self.architecture.strip() or not path:
            self.report({"ERROR"}, "Pick a checkpoint file and name its architecture (e.g. ViT-B-32)")
            return {"CANCELLED"}
        prefs = connection.preferences()
        pairs = [*clip_models(prefs.clip_models), f"{self.architecture.strip()}:{path}"]
        prefs.clip_models = ", ".join(dict.fromkeys(pairs))
        return {"FINISHED"}


def draw_clip_models(layout: bpy.types.UILayout, prefs: Any) -> None:
    """Each CLIP model with its state, Download (with progress) for a missing tag, and the list's text."""
    box = layout.box()
    row = box.row()
    row.label(text="CLIP Models", icon="IMAGE_REFERENCE")
    row.operator("regia.clip_add_file", text="Add File", icon="FILE_NEW")
    box.prop(prefs, "clip_models")
    icons = {"present": "CHECKMARK", "missing": "ERROR", "unknown": "QUESTION"}
    for pair in clip_models(prefs.clip_models):
        state, task = model_state(pair), _fetches.get(pair)
        row = box.row(align=True)
        row.label(text=f"{pair}: {state}" if state != "unknown" else pair, icon=icons[state])
        if task is not None and task.state == "RUNNING":
            row.progress(text=task.detail, factor=task.fraction, type="BAR")
            row.operator("regia.clip_download_cancel", text="", icon="CANCEL").model = pair
        elif state == "missing" and downloadable(pair):
            row.operator("regia.clip_download", icon="IMPORT").model = pair
        if task is not None and task.state == "FAILED":
            box.label(text=f"Download failed: {task.error}", icon="ERROR")


# ---- the CLIP Model choice -------------------------------------------------------------------------------------

_choices: list[tuple[str, str, str, int]] = []  # Blender needs the items of a dynamic enum kept alive


def _current(owner: Any) -> str:
    return f"{owner.clip_model}:{owner.clip_weights}" if owner.clip_model else ""


def _items(owner: Any, _context: object) -> list[tuple[str, str, str, int]]:
    """None, every model of the preferences' list, and the owner's own when it is not in the list (kept, not lost)."""
    pairs = clip_models(connection.preferences().clip_models)
    current = _current(owner)
    if current and current not in pairs:
        pairs.append(current)
    _choices[:] = [(NONE, "None", "No CLIP model (Text and Inspiration guides need one)", 0)] + [
        (pair, pair, f"The CLIP model {pair}", index) for index, pair in enumerate(pairs, start=1)
    ]
    return _choices


def _get(owner: Any) -> int:
    current = _current(owner)
    return next((number for key, _l, _t, number in _items(owner, None) if key == current), 0)


def _set(owner: Any, value: int) -> None:
    key = next((key for key, _l, _t, number in _items(owner, None) if number == value), NONE)
    name, _, weights = ("", "", "") if key == NONE else key.partition(":")
    owner.clip_model, owner.clip_weights = name, weights


def clip_choice_property() -> Any:
    return EnumProperty(
        name="CLIP Model",
        items=_items,
        get=_get,
        set=_set,
        description="The CLIP model Text and Inspiration guides use: one of the CLIP Models in Regia's preferences",
    )


CLASSES = (REGIA_OT_clip_download, REGIA_OT_clip_download_cancel, REGIA_OT_clip_add_file)
