"""Turning image references in a spec into decoded images.

The CLI resolves paths relative to the spec file. The server plugs in a blob store instead,
so that no client string ever reaches the file system.

Every source answers `size` from the file's header alone, and `open` decodes only images within its limits: a
canvas-sized image of the wrong size, or a bomb, is refused before any pixel is decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PIL import Image

from .errors import SpecError
from .images import CLI_LIMITS, ImageLimits, decode_image, image_size
from .input_files import IMAGE_FILE_LIMIT, read_input_file


class ImageSource(Protocol):
    def size(self, ref: str, field: str) -> tuple[int, int]:
        """(width, height) from the header alone; SpecError when it cannot be read."""
        ...

    def open(self, ref: str, field: str) -> Image.Image:
        """The decoded image; SpecError when it cannot be read, is damaged or is over the source's limits."""
        ...


class FolderSource:
    """References are file paths, relative to the folder that holds the spec."""

    def __init__(self, base_dir: Path, limits: ImageLimits = CLI_LIMITS):
        self.base_dir = base_dir.resolve()
        self.limits = limits

    def path_of(self, ref: str) -> Path:
        return (self.base_dir / ref).resolve()

    def read(self, ref: str, field: str) -> bytes:
        """The file's bytes, undecoded (within the input file limit): what a remote worker is sent."""
        if ref.startswith("blob:"):
            raise SpecError(
                field,
                "blob references only work through the engine server",
                value=ref,
                allowed="a path relative to the spec file",
            )
        return read_input_file(self.path_of(ref), field, IMAGE_FILE_LIMIT, value=ref)

    def size(self, ref: str, field: str) -> tuple[int, int]:
        return image_size(self.read(ref, field), field, ref)

    def open(self, ref: str, field: str) -> Image.Image:
        return decode_image(self.read(ref, field), field, ref, self.limits)
