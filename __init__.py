"""Regia, the Blender extension: its entry point, beside blender_manifest.toml.

Blender imports this file as `bl_ext.<repo>.regia`. The add-on itself lives in addon/ and is imported only
when Blender calls register(): so importing this file alone (pytest collecting the repository root, or any
tool scanning it) never pulls in bpy. Nothing here imports torch or engine/: the engine runs in its own process.
"""


def register() -> None:
    from .addon import register as register_addon

    register_addon()


def unregister() -> None:
    from .addon import unregister as unregister_addon

    unregister_addon()
