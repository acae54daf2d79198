"""The connection to an engine: a managed local process the add-on starts and stops, or a remote server, and a
status line from /health.

Nothing here waits on the network for longer than the client's short timeout: starting the managed engine is a
Popen, and its readiness is polled from the same timer that follows jobs (jobs.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy

from ..diffusion import ModelEntry, clip_models, health_line, serve_args
from ..engine_client import EngineClient, EngineError
from ..engine_process import EXITED, READY, EngineStartError, ManagedEngine, stop_all_engines
from . import install_engine
from .paths import EXTENSION_PACKAGE, EXTENSION_ROOT, user_dir

# A Python for the managed engine when the preference is empty (e.g. set by a studio's launcher).
PYTHON_ENV = "REGIA_PYTHON"


@dataclass
class EngineStatus:
    state: str = "stopped"  # stopped, starting, ready, failed, remote
    message: str = "Engine not started"
    health: dict[str, Any] | None = None


_managed: ManagedEngine | None = None
status = EngineStatus()


def preferences() -> bpy.types.AddonPreferences:
    return bpy.context.preferences.addons[EXTENSION_PACKAGE].preferences


def python_path(prefs: bpy.types.AddonPreferences) -> str:
    """The managed engine's Python: the Custom Python preference, else REGIA_PYTHON, else the environment Install
    Engine made ('' when none of them is there)."""
    custom = bpy.path.abspath(prefs.python_path).strip() or os.environ.get(PYTHON_ENV, "").strip()
    return custom or install_engine.python()


def running_python() -> str | None:
    """The Python the managed engine runs with, while it runs."""
    return _managed.python if _managed is not None and _managed.running else None


NOT_STARTED = "Engine not started"
NOT_INSTALLED = "The engine is not installed: press Install Engine in Regia's preferences"
INSTALLING = "The engine is being installed (its progress is in Regia's preferences)"


def _idle_message() -> str:
    """What the status line says while no managed engine runs."""
    if python_path(preferences()):
        return NOT_STARTED
    return INSTALLING if install_engine.running() else NOT_INSTALLED


def model_path(path: str) -> str:
    """A Diffusion Models entry's path as the engine takes it: absolute ('//' is the .blend's folder); a test model
    ('random:tiny-sd') as it is."""
    path = path.strip()
    return bpy.path.abspath(path) if path.startswith("//") else path


def diffusion_entries(prefs: bpy.types.AddonPreferences | None = None) -> list[ModelEntry]:
    """The preferences' Diffusion Models list."""
    prefs = prefs or preferences()
    return [ModelEntry(item.name, model_path(item.path)) for item in prefs.diffusion_models]


def engine_args(prefs: bpy.types.AddonPreferences) -> list[str]:
    """The managed engine's model options: `--clip=NAME:WEIGHTS` and `--diffusion=PATH`, values joined."""
    return serve_args(clip_models(prefs.clip_models), [entry.path for entry in diffusion_entries(prefs)])


def start() -> None:
    """Start the managed engine (non-blocking). Raises EngineStartError with a readable message when it cannot."""
    global _managed
    prefs = preferences()
    python = python_path(prefs)
    if not python:
        if install_engine.running():
            raise EngineStartError("The engine is being installed: it can start once the install finishes")
        raise EngineStartError(f"{NOT_INSTALLED} (Edit > Preferences > Add-ons > Regia)")
    stop()
    extra = engine_args(prefs)  # joined: a value is never an option
    _managed = ManagedEngine(python, EXTENSION_ROOT, user_dir("engine-data"), device=prefs.device, extra_args=extra)
    _managed.start()
    status.state, status.message, status.health = "starting", f"Starting the engine with {python}", None


def stop() -> None:
    global _managed
    if _managed is not None:
        _managed.stop()
        _managed = None
    status.state, status.message, status.health = "stopped", "Engine stopped", None


def shutdown() -> None:
    """On unregister: no engine process (nor pip) may outlive the add-on."""
    install_engine.shutdown()
    stop()
    stop_all_engines()


def is_managed() -> bool:
    return preferences().engine_mode == "MANAGED"


def poll() -> str:
    """Advance the managed engine's start-up without blocking; returns its state."""
    if not is_managed():
        status.state = "remote"
        return status.state
    if _managed is None:
        if status.state not in ("stopped", "failed"):
            status.state, status.message = "stopped", "Engine not started"
        if status.state == "stopped" and status.message in (NOT_STARTED, NOT_INSTALLED, INSTALLING):
            status.message = _idle_message()
        return status.state
    if status.state == "starting":
        state = _managed.poll()
        if state.state == READY:
            status.state = "ready"
            refresh_health()
        elif state.state == EXITED:
            status.state, status.message = "failed", state.message
    elif status.state == "ready" and not _managed.running:
        status.state, status.message = "failed", _managed.poll().message or "The engine stopped"
    return status.state


def client() -> EngineClient | None:
    """A client for the engine when one is ready (remote: always), else None."""
    prefs = preferences()
    if prefs.engine_mode == "REMOTE":
        return EngineClient(prefs.remote_url.strip().rstrip("/"), prefs.remote_token.strip() or None)
    if _managed is not None and poll() == "ready":
        return _managed.client()
    return None


def refresh_health() -> str:
    """One short /health call (the client's 100 ms timeout), summarised for the status line."""
    engine = client()
    if engine is None:
        return status.message
    try:
        health = engine.health()
    except EngineError as error:
        # A slow answer (a cold first request, a busy machine) says nothing about the engine being down: poll()
        # marks a managed engine failed only when its process has ended. Jobs go on; Check asks again.
        status.health, status.message = None, f"The engine did not report its status in time: {error}. Press Check."
        return status.message
    status.health = health
    status.message = health_line(health)
    return status.message
