"""PNG in and out: decoding with clear errors, and atomic writes that never leave half a file."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import SpecError
from .png_check import PngProblem, check_complete, is_png, read_header

_UMASK = os.umask(0)
os.umask(_UMASK)
_file_mode = 0o666 & ~_UMASK  # outputs read like any file the user makes; the server narrows it (private_files)
# Pillow's own bomb check only warns between 1x and 2x this; every decode here checks the size first (ImageLimits).
Image.MAX_IMAGE_PIXELS = None
MEGA = 1_000_000


def private_files() -> None:
    """From now on atomic writes make 0600 files and new folders are 0700: the engine server's data."""
    global _file_mode
    _file_mode = 0o600
    os.umask(0o077)


@dataclass(frozen=True)
class ImageLimits:
    """The largest image decoded at all: sides and pixel count, read from the file's header before any pixel is.

    `option` names the setting that raises them, for the error message."""

    max_side: int
    max_pixels: int
    option: str = ""

    def allowed(self) -> str:
        text = f"at most {self.max_side} pixels a side and {self.max_pixels / MEGA:g} megapixels"
        return f"{text} ({self.option})" if self.option else text

    def problem(self, width: int, height: int, field: str, name: str) -> SpecError | None:
        if width <= self.max_side and height <= self.max_side and width * height <= self.max_pixels:
            return None
        return SpecError(
            field,
            f"{name} is {width}x{height} ({width * height / MEGA:.1f} megapixels), over the size this engine decodes: "
            "scale it down",
            value=f"{width}x{height}",
            allowed=self.allowed(),
        )


# Images given to `run`, `validate` and `storyboard`: as large as Pillow's old bomb limit (8192x8192), never more.
CLI_LIMITS = ImageLimits(max_side=16384, max_pixels=64 * MEGA)


def image_size(data: bytes, field: str, name: str) -> tuple[int, int]:
    """Width and height from the header alone (no pixel decoded); SpecError when the header is unreadable."""
    if is_png(data):
        try:
            header = read_header(data)
        except PngProblem as exc:
            raise SpecError(field, f"{name} is corrupt or truncated ({exc})") from None
        return header.width, header.height
    with _opened(data, field, name) as image:
        return image.size


@contextmanager
def _opened(data: bytes, field: str, name: str) -> Iterator[Image.Image]:
    """Pillow's lazy open: it reads the header, not the pixels."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise SpecError(field, f"{name} is not a PNG or any other image format this engine reads") from None
    except (OSError, SyntaxError, ValueError) as exc:  # cut inside its header: "Truncated File Read"
        raise SpecError(field, f"{name} is corrupt or truncated ({exc})") from None
    try:
        yield image
    except BaseException:
        image.close()
        raise


def decode_image(
    data: bytes,
    field: str,
    name: str,
    limits: ImageLimits = CLI_LIMITS,
) -> Image.Image:
    """Decode image bytes fully, once their size passed `limits` and, for a PNG, every chunk was found whole:
    no bomb is ever decoded, and truncation is caught here, not mid-job."""
    width, height = image_size(data, field, name)
    problem = limits.problem(width, height, field, name)
    if problem is not None:
        raise problem
    if is_png(data):
        try:
            check_complete(data)
        except PngProblem as exc:
            raise SpecError(field, f"{name} is corrupt or truncated ({exc})") from None
    with _opened(data, field, name) as image:
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            # Pillow's messages for broken files are short and specific ("image file is truncated").
            raise SpecError(field, f"{name} is corrupt or truncated ({exc})") from None
        return image


def to_rgb(image: Image.Image) -> np.ndarray:
    """H x W x 3 float32 in [0, 1]."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def to_rgba(image: Image.Image) -> np.ndarray:
    """H x W x 4 float32 in [0, 1]; opaque where the file has no alpha."""
    return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0


def to_mask(image: Image.Image) -> np.ndarray:
    """H x W float32 in [0, 1]: the alpha of an image with alpha, else its gray level."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def quantize(rgb: np.ndarray) -> np.ndarray:
    """float [0,1] H x W x C -> uint8, rounding to nearest so that x/255 round-trips exactly."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 (or float in [0,1]) H x W [x C] array to PNG bytes."""
    array = pixels if pixels.dtype == np.uint8 else quantize(pixels)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode)  # mkstemp makes 0600; outputs should read like any file (not server data)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_png(path: Path, pixels: np.ndarray) -> None:
    atomic_write_bytes(path, png_bytes(pixels))
