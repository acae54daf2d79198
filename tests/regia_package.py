"""The repository root as the package `regia`, as Blender imports the extension (`bl_ext.<repo>.regia`).

The add-on's modules reach the shared contract with relative imports (`from ..regia_contract import kinds`), so
tests and benchmarks import them as `regia.addon.<module>`. The root's __init__.py only defines register() and
unregister(): importing the package pulls in neither bpy nor torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "regia"


def install() -> types.ModuleType:
    """`regia` in sys.modules, with the repository root as its one search path; idempotent."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module


def addon_module(name: str) -> types.ModuleType:
    """A pure module of the add-on (addon/<name>.py), imported as Blender would: `regia.addon.<name>`."""
    install()
    return importlib.import_module(f"{NAME}.addon.{name}")
