"""Install Engine, Cancel, Repair and Remove: the operators over install_engine.py. Repair and Remove ask first,
and stop the managed engine when it runs from the environment they change."""

from __future__ import annotations

import textwrap
from typing import Any

import bpy

from ..engine_install import InstallError
from . import connection, install_engine


def _stop_engine_using_environment() -> None:
    installed = install_engine.python()
    if installed and connection.running_python() == installed:
        connection.stop()


def _start(operator: bpy.types.Operator, repair: bool) -> set[str]:
    try:
        install_engine.start(repair=repair, base_python=connection.preferences().install_python)
    except InstallError as error:
        operator.report({"ERROR"}, str(error))
        return {"CANCELLED"}
    return {"FINISHED"}


class REGIA_OT_engine_install(bpy.types.Operator):
    """Download PyTorch (the build for this computer's graphics card) and the engine's packages into a private
    Python environment in Regia's user folder; after a Cancel it goes on where it stopped"""

    bl_idname = "regia.engine_install"
    bl_label = "Install Engine"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not install_engine.running()

    def execute(self, context: bpy.types.Context) -> set[str]:
        _stop_engine_using_environment()  # an outdated environment is updated under it
        return _start(self, repair=False)


class REGIA_OT_engine_install_cancel(bpy.types.Operator):
    """Stop the install; Install Engine later goes on where it stopped"""

    bl_idname = "regia.engine_install_cancel"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return install_engine.running()

    def execute(self, context: bpy.types.Context) -> set[str]:
        install_engine.cancel()
        return {"FINISHED"}


class REGIA_OT_engine_repair(bpy.types.Operator):
    """Empty the engine's environment and install its packages again, downloading them anew (when the engine
    reports a missing or broken package, or Blender moved)"""

    bl_idname = "regia.engine_repair"
    bl_label = "Repair"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not install_engine.running()

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        message = f"Download the engine's packages again ({install_engine.size_words()})?"
        return context.window_manager.invoke_confirm(self, event, title="Repair Engine", message=message)

    def execute(self, context: bpy.types.Context) -> set[str]:
        _stop_engine_using_environment()
        return _start(self, repair=True)


class REGIA_OT_engine_remove(bpy.types.Operator):
    """Delete the engine's environment from Regia's user folder and free its disk space; Install Engine makes it
    again"""

    bl_idname = "regia.engine_remove"
    bl_label = "Remove"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not install_engine.running()

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        return context.window_manager.invoke_confirm(
            self, event, title="Remove Engine", message="Delete the engine's environment?", icon="WARNING"
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        _stop_engine_using_environment()
        try:
            install_engine.remove()
        except InstallError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Removed {install_engine.venv_dir()}")
        return {"FINISHED"}


def draw_install(layout: bpy.types.UILayout, prefs: Any) -> None:
    """The Engine Environment box: its state, the install's progress, its buttons and its log."""
    box = layout.box()
    box.label(text="Engine Environment", icon="CONSOLE")
    now = install_engine.status()
    if install_engine.running() and now is not None:
        box.label(text=now.step or "Starting", icon="SORTTIME")
        if now.detail:
            box.progress(text=now.detail, factor=install_engine.progress_factor(now), type="BAR")
        box.operator("regia.engine_install_cancel", icon="CANCEL")
        _draw_log(box)
        return
    state = install_engine.state()
    words, icon = _STATE_WORDS[state]
    built = install_engine.installed_for()
    words = words.format(folder=install_engine.venv_dir(), size=install_engine.size_words())
    _labels(box, f"{words}, with PyTorch for {built}" if state == "ready" and built else words, icon)
    if now is not None and now.message and now.state != "done":
        _labels(box, now.message, "ERROR" if now.state == "failed" else "INFO")
    if not install_engine.online() and state != "ready":
        _labels(box, install_engine.OFFLINE, "INTERNET_OFFLINE")
    row = box.row(align=True)
    if state != "ready":
        row.operator("regia.engine_install", icon="IMPORT")
    if state != "missing":
        row.operator("regia.engine_repair", icon="TOOL_SETTINGS")
        row.operator("regia.engine_remove", icon="TRASH")
    if state != "ready":
        box.prop(prefs, "install_python")
    _draw_log(box)


_STATE_WORDS = {
    "missing": ("Not installed: Install Engine puts PyTorch and its packages ({size}) in {folder}", "INFO"),
    "incomplete": ("Not finished (cancelled or failed): Install Engine goes on where it stopped", "INFO"),
    "outdated": ("Installed for an older Regia: press Install Engine to update its packages", "ERROR"),
    "ready": ("Installed in {folder}", "CHECKMARK"),
}


def _draw_log(layout: bpy.types.UILayout) -> None:
    log = install_engine.log_path()
    if log.is_file():
        row = layout.row()
        row.label(text=f"Log: {log}")
        row.operator("wm.path_open", text="Open Log", icon="TEXT").filepath = str(log)


def _labels(layout: bpy.types.UILayout, text: str, icon: str) -> None:
    for i, line in enumerate(textwrap.wrap(text, 70, break_long_words=False, break_on_hyphens=False) or [""]):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


CLASSES: tuple[type, ...] = (
    REGIA_OT_engine_install,
    REGIA_OT_engine_install_cancel,
    REGIA_OT_engine_repair,
    REGIA_OT_engine_remove,
)
