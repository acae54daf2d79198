"""The add-on's two layers: addon/*.py is pure (no bpy, no torch) and imports without Blender; only
addon/blender/ touches bpy. Checked by reading the imports and by importing every pure module in a clean child."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from importrules import imported_modules, relative_imports

REPO = Path(__file__).resolve().parent.parent
PURE = sorted(p for p in (REPO / "addon").glob("*.py"))
BLENDER_SIDE = {"bpy", "bpy_extras", "bpy_types", "addon_utils", "mathutils", "bmesh", "gpu", "blf"}


def test_pure_modules_never_import_bpy_or_the_blender_layer() -> None:
    assert len(PURE) >= 8, PURE
    for path in PURE:
        assert not imported_modules(path) & (BLENDER_SIDE | {"torch"}), path.name
        if path.name != "__init__.py":  # register() imports the bpy layer, lazily: that is its job
            assert not {m for m in relative_imports(path) if m.split(".")[0] == "blender"}, path.name


def test_every_pure_module_imports_without_blender() -> None:
    names = [f"regia.addon.{p.stem}" if p.stem != "__init__" else "regia.addon" for p in PURE]
    code = (
        "import importlib, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "import regia_package\n"
        "regia_package.install()\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert 'bpy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
