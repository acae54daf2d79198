"""Install Engine's bpy side: where the environment lives (the extension's user folder), Blender's Allow Online
Access, and the timer that follows the install and redraws the preferences. The install itself is
engine_install.py's, in a thread and child processes: nothing here waits.

bpy.app.timers never fire in the bpy module (tests): they call poll() directly.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import bpy

from ..engine_install import (
    DONE,
    MISSING,
    RUNNING,
    EngineInstaller,
    InstallError,
    InstallStatus,
    environment_state,
    installed_python,
    read_marker,
    remove_environment,
)
from ..install_plan import (
    GB,
    InstallPlan,
    Machine,
    detect_machine,
    make_plan,
    read_requirements,
    space_needed,
    torch_choice,
)
from .paths import EXTENSION_PACKAGE, user_dir
from .redraw import redraw

# A package index that replaces PyPI (a studio's mirror), and one for PyTorch: for studios, and for tests.
INDEX_ENV = "REGIA_INDEX_URL"
TORCH_INDEX_ENV = "REGIA_TORCH_INDEX_URL"
POLL_INTERVAL = 0.5
OFFLINE = (
    "Online access is off in Blender: turn on Allow Online Access (Preferences > System > Network) so that "
    "Install Engine can download PyTorch and the engine's packages"
)

_installer: EngineInstaller | None = None
_last: InstallStatus | None = None  # the last run's outcome, shown until the next one starts
_machine: Machine | None = None


def folder() -> Path:
    """The extension's user folder (bpy.utils.extension_path_user): kept across extension updates."""
    try:
        return Path(bpy.utils.extension_path_user(EXTENSION_PACKAGE, create=True))
    except (ValueError, RuntimeError):  # not installed as an extension (e.g. run from a source tree)
        return user_dir("engine-data").parent


def venv_dir() -> Path:
    return folder() / "engine-env"


def log_path() -> Path:
    return folder() / "engine-install.log"


def python() -> str:
    """The installed environment's Python, or '' when no install completed."""
    found = installed_python(venv_dir())
    return str(found) if found else ""


def installed_for() -> str:
    """The PyTorch build the environment has ('NVIDIA CUDA 12.8'), '' when unknown."""
    return str(read_marker(venv_dir()).get("torch_label", ""))


def state() -> str:
    """missing, incomplete, outdated or ready (engine_install.environment_state)."""
    try:
        requirements = read_requirements()
    except OSError:
        return MISSING
    return environment_state(venv_dir(), requirements)


def online() -> bool:
    """Blender's Allow Online Access (4.2+); older Blenders have no such setting."""
    return bool(getattr(bpy.app, "online_access", True))


def machine() -> Machine:
    """This computer's GPU facts, asked once a session (nvidia-smi answers within a second)."""
    global _machine
    if _machine is None:
        _machine = detect_machine()
    return _machine


def _detect_in_background() -> None:
    """For the preferences' words: they are drawn without waiting for nvidia-smi."""
    if _machine is None and not any(t.name == "regia-detect" for t in threading.enumerate()):
        threading.Thread(target=machine, name="regia-detect", daemon=True).start()


def plan(repair: bool = False, base_python: str = "") -> InstallPlan:
    return make_plan(
        folder(),
        base_python.strip() or sys.executable,  # Blender's own Python makes the environment by default
        machine(),
        index_url=os.environ.get(INDEX_ENV, "").strip() or None,
        torch_index_url=os.environ.get(TORCH_INDEX_ENV, "").strip() or None,
        repair=repair,
    )


def running() -> bool:
    return _installer is not None and _installer.running


def status() -> InstallStatus | None:
    """The install under way, else the last one's outcome (None when none ran this session)."""
    return _installer.poll() if _installer is not None else _last


def start(repair: bool = False, base_python: str = "") -> None:
    """Begin Install Engine (or Repair) and its timer; raises InstallError (offline, no space, one runs already)."""
    global _installer, _last
    if running():
        raise InstallError("The engine is being installed already")
    if not online():
        raise InstallError(OFFLINE)
    _installer = EngineInstaller(plan(repair, base_python)).start()
    _last = None
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL, persistent=True)


def cancel() -> None:
    if _installer is not None:
        _installer.cancel()


def remove() -> None:
    """Delete the environment (the caller stops the engine first). Raises InstallError."""
    global _last
    if running():
        raise InstallError("Cancel the install first")
    remove_environment(venv_dir())
    _last = None


def poll() -> float | None:
    """The timer: follow the install, redraw the preferences; ends with it."""
    global _installer, _last
    with contextlib.suppress(Exception):  # a redraw is a courtesy: it must never stop the timer
        _redraw()
    if _installer is None:
        return None
    now = _installer.poll()
    if now.state == RUNNING:
        return POLL_INTERVAL
    _installer, _last = None, now
    if now.state == DONE:
        print(f"Regia: {now.message}")
    return None


def progress_factor(now: InstallStatus) -> float:
    """How far the current download is, for a progress bar (0 while none is under way)."""
    return min(1.0, now.file_done / now.bytes_total) if now.bytes_total else 0.0


def size_words() -> str:
    """How much Install Engine downloads, once the GPU is known ('several GB' until then)."""
    if _machine is None:
        _detect_in_background()
        return "several GB"
    return f"about {space_needed(torch_choice(_machine)) / GB:.0f} GB"


def shutdown() -> None:
    """On unregister: no pip may outlive the add-on (the environment stays incomplete; Install resumes it)."""
    cancel()
    if bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)


def _redraw() -> None:
    redraw(("PREFERENCES", "IMAGE_EDITOR", "SEQUENCE_EDITOR"))
