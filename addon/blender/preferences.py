"""Add-on preferences: how to reach the engine (managed local process or remote server), and its status."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import connection
from .paths import EXTENSION_PACKAGE, EXTENSION_ROOT


class RegiaPreferences(bpy.types.AddonPreferences):
    bl_idname = EXTENSION_PACKAGE

    engine_mode: EnumProperty(
        name="Engine",
        items=[
            ("MANAGED", "Managed local", "Regia starts the engine as a Python process on this computer"),
            ("REMOTE", "Remote", "Connect to an engine started elsewhere (`python -m engine serve`)"),
        ],
        default="MANAGED",
    )
    python_path: StringProperty(
        name="Python",
        subtype="FILE_PATH",
        description="A Python interpreter with the engine's requirements (torch) installed",
    )
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "CUDA, then MPS, then CPU"),
            ("cpu", "CPU", ""),
            ("cuda", "CUDA", ""),
            ("mps", "MPS", ""),
        ],
        default="auto",
    )
    clip_models: StringProperty(
        name="CLIP models",
        description="NAME:WEIGHTS pairs the managed engine reports on (present or missing), separated by commas, "
        "e.g. ViT-B-32:laion2b_s34b_b79k",
    )
    remote_url: StringProperty(name="URL", default="http://127.0.0.1:8765")
    remote_token: StringProperty(name="Token", subtype="PASSWORD")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "engine_mode", expand=True)
        if self.engine_mode == "MANAGED":
            layout.prop(self, "python_path")
            layout.prop(self, "device")
            layout.prop(self, "clip_models")
            layout.label(text=f"Engine source: {EXTENSION_ROOT / 'engine'}")
        else:
            layout.prop(self, "remote_url")
            layout.prop(self, "remote_token")
        draw_engine_status(layout)


def draw_engine_status(layout: bpy.types.UILayout) -> None:
    status = connection.status
    icon = {"ready": "CHECKMARK", "starting": "SORTTIME", "failed": "ERROR", "remote": "URL"}.get(status.state, "X")
    box = layout.box()
    for i, line in enumerate(_wrap(status.message, 70)):
        box.label(text=line, icon=icon if i == 0 else "BLANK1")
    row = box.row(align=True)
    if connection.is_managed():
        row.operator("regia.engine_start", icon="PLAY")
        row.operator("regia.engine_stop", icon="PAUSE")
        row.operator("regia.engine_restart", icon="FILE_REFRESH")
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


CLASSES: tuple[type, ...] = (RegiaPreferences,)
