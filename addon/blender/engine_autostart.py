"""Start the managed engine when Blender starts (the Start with Blender preference), so the artist's first Generate
finds it loaded: an engine's start, most of it importing PyTorch, takes seconds (README, Benchmarks, Start-up).

Only in a Blender with a window (not `blender -b` on a render farm), only for the managed engine once it is
installed, and only if it is not running. The start is a Popen and its readiness is polled from a timer, so nothing
waits.
"""

from __future__ import annotations

import contextlib

import bpy

from ..engine_process import EngineStartError
from . import connection, install_engine
from .redraw import redraw

FIRST_DELAY = 1.0  # seconds after register: Blender's start-up and the preferences come first
POLL_SECONDS = 0.5
_REDRAWN = ("PREFERENCES", "IMAGE_EDITOR", "VIEW_3D", "SEQUENCE_EDITOR")


def wanted(background: bool) -> bool:
    """Whether the engine should start now: a window, the managed engine chosen and installed, the preference on,
    and no engine running or being installed."""
    if background or not connection.is_managed():
        return False
    prefs = connection.preferences()
    if not prefs.start_with_blender or install_engine.running() or not connection.python_path(prefs):
        return False
    return connection.poll() in ("stopped", "failed")


def start_if_wanted(background: bool | None = None) -> bool:
    """Start the managed engine if `wanted`; True when it was started. `background` defaults to Blender's own."""
    if not wanted(bpy.app.background if background is None else background):
        return False
    try:
        connection.start()
    except EngineStartError as error:  # shown in the status line when the artist opens Regia; not worth a popup
        print(f"Regia: {error}")
        return False
    if not bpy.app.timers.is_registered(follow_start):
        bpy.app.timers.register(follow_start, first_interval=POLL_SECONDS, persistent=True)
    return True


def follow_start() -> float | None:
    """The timer while the engine starts: poll it, redraw its status line; stops once it is up or has failed."""
    state = connection.poll()
    with contextlib.suppress(Exception):  # a redraw is a courtesy: it must never stop the timer
        redraw(_REDRAWN)
    return POLL_SECONDS if state == "starting" else None


def on_launch() -> None:
    """The one-shot timer register() schedules."""
    with contextlib.suppress(Exception):  # never an error at Blender's start for a convenience
        start_if_wanted()


def register() -> None:
    bpy.app.timers.register(on_launch, first_interval=FIRST_DELAY)


def unregister() -> None:
    for timer in (on_launch, follow_start):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
