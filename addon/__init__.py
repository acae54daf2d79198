"""The Blender-facing side of Regia: bpy, numpy and the standard library, never torch.

Two layers, as Blender's glTF add-on splits them:
- `addon/*.py` is pure logic with no bpy: the engine client and process, the job session, the mask rasteriser,
  paint-layer masks, the PNG encoder and the spec builder. Tests import these without Blender.
- `addon/blender/` is the bpy side: properties, operators, panels, the timer that polls running jobs.

Importing this package does not import bpy; Blender calls register(), which does.
"""


def register() -> None:
    from .blender import register as register_blender

    register_blender()


def unregister() -> None:
    from .blender import unregister as unregister_blender

    unregister_blender()
