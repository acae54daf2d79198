"""Install Engine in headless bpy (run by tests/test_engine_install.py): the installed extension's operators against
a loopback package index (REGIA_INDEX_URL, REGIA_TORCH_INDEX_URL), the install's timer function called directly
(bpy.app.timers never fire in the bpy module), and what the preferences draw at each stage.

argv: the extension zip. Prints `REGIA-RESULT {json}` lines, and REGIA-OK at the end.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

import bpy

ZIP = sys.argv[1]
PACKAGE = "bl_ext.user_default.regia"


def emit(**data: object) -> None:
    print("REGIA-RESULT " + json.dumps(data), flush=True)


class Recorder:
    """A UILayout stand-in that records what is drawn: labels, props and operators (with their icons)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def _child(self, *args: object, **kwargs: object) -> Recorder:
        return self

    row = column = box = split = _child

    def label(self, text: str = "", icon: str = "NONE", **kwargs: object) -> None:
        self.log.append(f"label:{text}")

    def prop(self, data: object, name: str, **kwargs: object) -> None:
        self.log.append(f"prop:{name}")

    def progress(self, text: str = "", **kwargs: object) -> None:
        self.log.append(f"progress:{text}")

    def operator(self, idname: str, text: str = "", icon: str = "NONE", **kwargs: object) -> object:
        self.log.append(f"op:{idname}:{icon}")
        return type("Props", (), {})()

    def template_list(self, *args: object, **kwargs: object) -> None:
        self.log.append("list")

    def __getattr__(self, name: str) -> object:  # separator, template_*...: drawn, not recorded
        return self._child

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


def drawn() -> list[str]:
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    log: list[str] = []
    # draw() reads self.layout, which only Blender sets: a stand-in self with the preferences' values.
    type(prefs).draw(SimpleNamespace(layout=Recorder(log), **{k: getattr(prefs, k) for k in KEYS}), None)
    return log


KEYS = ("engine_mode", "python_path", "install_python", "device", "clip_models", "diffusion_models",
        "active_diffusion_model", "remote_url", "remote_token")  # fmt: skip


def follow(install) -> list[dict[str, object]]:
    """Call the timer function until it ends, as Blender would every half second."""
    seen = []
    deadline = time.monotonic() + 240
    while install.poll() is not None:
        now = install.status()
        seen.append({"state": now.state, "step": now.step, "detail": now.detail} if now else {})
        assert time.monotonic() < deadline, seen[-3:]
        time.sleep(0.05)
    return seen


def main() -> None:
    result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=ZIP, enable_on_install=True)
    assert result == {"FINISHED"}, result
    install = sys.modules[f"{PACKAGE}.addon.blender.install_engine"]
    connection = sys.modules[f"{PACKAGE}.addon.blender.connection"]
    prefs = connection.preferences()
    assert connection.poll() == "stopped"
    emit(phase="fresh", message=connection.status.message, drawn=drawn(), folder=str(install.folder()))

    bpy.context.preferences.system.use_online_access = False
    try:
        bpy.ops.regia.engine_install()
        refused = ""
    except RuntimeError as error:
        refused = str(error)
    emit(phase="offline", refused=refused, state=install.state(), drawn=drawn())

    bpy.context.preferences.system.use_online_access = True
    assert bpy.ops.regia.engine_install() == {"FINISHED"}
    assert bpy.app.timers.is_registered(install.poll)
    deadline = time.monotonic() + 120
    while not install.status().step.startswith(("Updating", "Installing")):  # the environment is made
        assert install.poll() is not None and time.monotonic() < deadline, install.status()
        time.sleep(0.05)
    running = drawn()
    connection.poll()
    installing_message = connection.status.message
    assert bpy.ops.regia.engine_install_cancel() == {"FINISHED"}
    follow(install)
    emit(phase="cancelled", status=install.status().state, state=install.state(), drawn=drawn(), running=running,
         installing_message=installing_message)  # fmt: skip

    assert bpy.ops.regia.engine_install() == {"FINISHED"}
    seen = follow(install)
    now = install.status()
    emit(
        phase="installed",
        status=now.state,
        message=now.message,
        seen=seen,
        state=install.state(),
        python=connection.python_path(prefs),
        venv=str(install.venv_dir()),
        engine=connection.poll(),
        engine_message=connection.status.message,
        drawn=drawn(),
    )

    assert bpy.ops.regia.engine_remove() == {"FINISHED"}
    emit(phase="removed", state=install.state(), python=connection.python_path(prefs), drawn=drawn())

    prefs.engine_mode = "REMOTE"
    connection.poll()
    emit(phase="remote", drawn=drawn())
    print("REGIA-OK")


main()
