"""Turning image references in a spec into decoded images.

The CLI resolves paths relative to the spec file. The server plugs in a blob store instead,
so that no client string ever reaches the file system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PIL import Image

from .errors import SpecError
from .images import decode_image


class ImageSource(Protocol):
    def open(self, ref: str, field: str) -> Image.Image: ...


class FolderSource:
    """References are file paths, relative to the folder that holds the spec."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir.resolve()

    def path_of(self, ref: str) -> Path:
        return (self.base_dir / ref).resolve()

    def open(self, ref: str, field: str) -> Image.Image:
        if ref.startswith("blob:"):
            raise SpecError(
                field,
                "blob references only work through the engine server",
                value=ref,
                allowed="a path relative to the spec file",
            )
        path = self.path_of(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SpecError(field, f"file not found: {path}", value=ref) from None
        except IsADirectoryError:
            raise SpecError(field, f"is a folder, not an image: {path}", value=ref) from None
        except OSError as exc:
            raise SpecError(field, f"cannot read {path}: {exc.strerror}", value=ref) from None
        return decode_image(data, field, ref)
