"""Run a script under headless bpy in a child process, with a throw-away HOME.

bpy and torch are both heavy native modules; keeping bpy in a child keeps the pytest process free of it, and
`import bpy` writes into HOME, so every child gets its own temporary one (set before bpy is imported).
Import with `import bpykit` after putting tests/ on sys.path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
OK_MARK = "REGIA-OK"
RESULT_MARK = "REGIA-RESULT "
# Other interpreters with bpy to run the add-on tests under too, e.g. one with bpy 4.2 (make test-bpy42).
EXTRA_BPY_PYTHONS = [p for p in os.environ.get("REGIA_EXTRA_BPY_PYTHONS", "").split(os.pathsep) if p]


def have_bpy() -> bool:
    return importlib.util.find_spec("bpy") is not None


def require_bpy() -> None:
    if not have_bpy():
        pytest.skip("bpy is not installed; run `make venv` (pip install -e '.[dev]')")


def bpy_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a bpy child: a private HOME and Blender user folder, the repository importable."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "BLENDER_USER_RESOURCES": str(home / "blender"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
        **extra,
    }
    return env


def run_bpy(
    script: str,
    tmp_path: Path,
    *args: str,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    python: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `script` (Python source that imports bpy) in a child; it gets `args` as sys.argv[1:]. `python` is
    another interpreter with bpy (e.g. Blender 4.2's), this one's by default."""
    if python is None:
        require_bpy()
    path = tmp_path / "bpy_script.py"
    path.write_text(script)
    return subprocess.run(
        [python or sys.executable, str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or bpy_env(tmp_path / "home"),
        cwd=tmp_path,
        check=False,
    )


def check_ok(result: subprocess.CompletedProcess[str]) -> None:
    """The child must exit 0 and print OK_MARK; otherwise fail with its whole output."""
    assert result.returncode == 0 and OK_MARK in result.stdout, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"
    )


def results(result: subprocess.CompletedProcess[str]) -> list[Any]:
    """JSON values the child printed on lines starting with RESULT_MARK, in order."""
    check_ok(result)
    return [json.loads(line[len(RESULT_MARK) :]) for line in result.stdout.splitlines() if line.startswith(RESULT_MARK)]


def blender_scripts() -> Path | None:
    """The `scripts` folder inside the bpy wheel, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*/scripts/addons_core/bl_pkg"))
    return found[-1].parent.parent if found else None


def blender_ext(scripts: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Blender's extension CLI, which runs under plain Python with no Blender binary."""
    cli = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    return subprocess.run(
        [sys.executable, str(cli), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def tags_args(scripts: Path) -> list[str]:
    """Check tags against Blender's own list where the wheel ships it."""
    tags = scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return ["--valid-tags", str(tags)] if tags.exists() else []


def build_extension(out: Path) -> Path:
    """Build the extension zip from the repository with Blender's own CLI; returns the zip's path."""
    scripts = blender_scripts()
    if scripts is None:
        pytest.skip("bpy is not installed; run `make venv` (pip install -e '.[dev]')")
    out.mkdir(parents=True, exist_ok=True)
    result = blender_ext(scripts, "build", "--source-dir", str(REPO), "--output-dir", str(out), *tags_args(scripts))
    assert result.returncode == 0, result.stdout + result.stderr
    (zip_path,) = out.glob("regia-*.zip")
    return zip_path
