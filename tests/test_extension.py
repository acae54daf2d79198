"""The Blender extension: manifest, built zip, install and enable in headless bpy, and the import rules.

bpy runs in a child process with the venv's Python: bpy and torch are both heavy native modules, and keeping
bpy out of the pytest process keeps the other tests (which import torch) independent of it. The child gets a
temporary HOME and BLENDER_USER_RESOURCES before it imports bpy, since `import bpy` writes into them.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import bpykit
import pytest
from importrules import imported_modules, relative_imports

pytestmark = [pytest.mark.bpy, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
EXTENSION_MODULE = "bl_ext.user_default.regia"
BPY_FAMILY = {"bpy", "bpy_extras", "bpy_types", "addon_utils", "mathutils", "bmesh", "gpu", "gpu_extras", "blf"}


@pytest.fixture(scope="module")
def scripts() -> Path:
    path = bpykit.blender_scripts()
    if path is None:
        pytest.skip("bpy is not installed; run `make venv` (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="module")
def built_zip(scripts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bpykit.build_extension(tmp_path_factory.mktemp("dist"))


def test_manifest_validates(scripts: Path) -> None:
    result = bpykit.blender_ext(scripts, "validate", *bpykit.tags_args(scripts), str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zip_holds_the_extension_and_the_engine_but_no_dev_files(scripts: Path, built_zip: Path) -> None:
    with zipfile.ZipFile(built_zip) as archive:
        names = set(archive.namelist())
    for required in ("__init__.py", "blender_manifest.toml", "addon/__init__.py", "engine/spec.py", "engine/cli.py"):
        assert required in names
    assert any(n.startswith("presets/") and n.endswith(".toml") for n in names)
    dev = ("tests/", "bench/", ".ci/", ".venv/", "out/", "dist/", ".git")
    assert not [n for n in names if n.startswith(dev) or "__pycache__" in n or n.endswith(".pyc")]
    assert not {"Makefile", "pyproject.toml"} & names
    result = bpykit.blender_ext(scripts, "validate", str(built_zip))
    assert result.returncode == 0, result.stdout + result.stderr


BPY_SCRIPT = """
import sys

import bpy
import addon_utils

name = sys.argv[1]
result = bpy.ops.extensions.package_install_files(repo="user_default", filepath=sys.argv[2], enable_on_install=True)
assert result == {"FINISHED"}, result
assert name in sys.modules, "module not loaded"
addons = bpy.context.preferences.addons
assert name in addons, "not enabled"
prefs_class = type(addons[name].preferences)
assert prefs_class.bl_idname == name and prefs_class.is_registered, prefs_class

addon_utils.disable(name, default_set=True)
assert name not in addons and not prefs_class.is_registered, "still enabled after disable"
assert addon_utils.enable(name, default_set=True) is not None, "enable failed"
assert name in addons and type(addons[name].preferences).is_registered, "not enabled again"

assert "torch" not in sys.modules, "the add-on imported torch"
print("installed at", sys.modules[name].__file__)
print("REGIA-OK")
"""


def test_zip_installs_and_enables_in_headless_blender(scripts: Path, built_zip: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "BLENDER_USER_RESOURCES": str(home / "blender"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    result = subprocess.run(
        [sys.executable, "-c", BPY_SCRIPT, EXTENSION_MODULE, str(built_zip)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0 and "REGIA-OK" in result.stdout, result.stdout + result.stderr
    installed = home / "blender" / "extensions" / "user_default" / "regia"
    assert (installed / "engine" / "spec.py").is_file()
    assert list((installed / "presets").glob("*.toml"))


# ---- import rules (DESIGN.md: addon/ never imports torch, engine/ never imports bpy) --------------------


def _addon_files() -> list[Path]:
    return [REPO / "__init__.py", *sorted((REPO / "addon").rglob("*.py"))]


def test_addon_imports_only_bpy_and_the_standard_library() -> None:
    # numpy is allowed too: Blender bundles it.
    allowed = set(sys.stdlib_module_names) | BPY_FAMILY | {"numpy"}
    for path in _addon_files():
        extra = imported_modules(path) - allowed
        assert not extra, f"{path.relative_to(REPO)} imports {extra}"
    # The root must not reach into the engine through a relative import either.
    assert not any(m.split(".")[0] == "engine" for m in relative_imports(REPO / "__init__.py"))


def test_engine_never_imports_bpy() -> None:
    files = sorted((REPO / "engine").rglob("*.py"))
    assert files
    for path in files:
        assert not imported_modules(path) & BPY_FAMILY, f"{path.relative_to(REPO)} imports bpy"


def test_root_init_imports_without_blender() -> None:
    """pytest (or any tool) may import the repository root as a package: that must not import bpy or torch."""
    name = "_regia_root_probe"
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        assert callable(module.register) and callable(module.unregister)
        assert f"{name}.addon" not in sys.modules
    finally:
        sys.modules.pop(name, None)
