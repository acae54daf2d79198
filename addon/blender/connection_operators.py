"""Operators for the connection to the engine: Start, Stop, Restart (the managed engine) and Check (any engine);
CLASSES also registers Install Engine's (install_operators.py)."""

from __future__ import annotations

import bpy

from ..engine_process import EngineStartError
from . import connection, install_operators, jobs


class _EngineStarter(bpy.types.Operator):
    """Shared by Start and Restart. Blender maps each registered class to its own RNA type, so one registered
    operator class must not subclass another."""

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            connection.start()  # stops a running one first
        except EngineStartError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        jobs.ensure_timer()
        return {"FINISHED"}


class REGIA_OT_engine_start(_EngineStarter):
    """Start the managed engine (a Python process on this computer)"""

    bl_idname = "regia.engine_start"
    bl_label = "Start Engine"


class REGIA_OT_engine_stop(bpy.types.Operator):
    """Stop the managed engine; running jobs are interrupted"""

    bl_idname = "regia.engine_stop"
    bl_label = "Stop Engine"

    def execute(self, context: bpy.types.Context) -> set[str]:
        connection.stop()
        return {"FINISHED"}


class REGIA_OT_engine_restart(_EngineStarter):
    """Restart the managed engine (e.g. after installing packages into its Python)"""

    bl_idname = "regia.engine_restart"
    bl_label = "Restart Engine"


class REGIA_OT_engine_check(bpy.types.Operator):
    """Ask the engine for its status: device, and which models are present"""

    bl_idname = "regia.engine_check"
    bl_label = "Check"

    def execute(self, context: bpy.types.Context) -> set[str]:
        connection.poll()
        message = connection.refresh_health() if connection.client() is not None else connection.status.message
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES: tuple[type, ...] = (
    REGIA_OT_engine_start,
    REGIA_OT_engine_stop,
    REGIA_OT_engine_restart,
    REGIA_OT_engine_check,
    *install_operators.CLASSES,
)
