"""Where the extension lives, where it keeps its files, and how it writes them."""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import bpy

# This package is `bl_ext.<repo>.regia.addon.blender`; Blender keys preferences on the extension's own package.
EXTENSION_PACKAGE = __package__.rsplit(".", 2)[0]
# The extension's root: it holds engine/ and presets/, which travel inside the extension (see the manifest).
EXTENSION_ROOT = Path(__file__).resolve().parents[2]
PRESETS_DIR = EXTENSION_ROOT / "presets"


def user_dir(name: str) -> Path:
    """A folder for Regia's own files (engine data, previews, results), kept across sessions."""
    try:
        return Path(bpy.utils.extension_path_user(EXTENSION_PACKAGE, path=name, create=True))
    except (ValueError, RuntimeError):  # not installed as an extension (e.g. run from a source tree)
        path = Path(tempfile.gettempdir()) / "regia" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def preset_names() -> list[str]:
    """The presets the engine ships: one TOML file each; a broken file is skipped here and reported by the engine."""
    names = []
    for path in sorted(PRESETS_DIR.glob("*.toml")):
        try:
            tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            continue
        names.append(path.stem)
    return names


def file_stem(name: str) -> str:
    """A file name from an image name: letters, digits, '-', '_' and '.'; anything else becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_file(path: Path, data: bytes) -> None:
    """Write beside, then rename: Blender never reads a half-written PNG."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
