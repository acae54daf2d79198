"""The Blender-facing side of Regia. Only Blender imports it: bpy and the standard library, never torch.

For now it registers the add-on's preferences; the engine client, mask export and panels come later.
"""

from pathlib import Path

import bpy

# This module is `bl_ext.<repo>.regia.addon`; Blender keys preferences on the extension's own package.
EXTENSION_PACKAGE = __package__.rpartition(".")[0]
# The engine's source travels inside the extension (see the manifest's [build]), so the add-on can start it.
ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"


class RegiaPreferences(bpy.types.AddonPreferences):
    bl_idname = EXTENSION_PACKAGE

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.label(text="Regia runs its engine in a separate Python process (PyTorch).")
        layout.label(text=f"Engine source: {ENGINE_DIR}")


CLASSES: tuple[type, ...] = (RegiaPreferences,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
