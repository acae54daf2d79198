"""PNG in and out: decoding with clear errors, and atomic writes that never leave half a file."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import SpecError

_UMASK = os.umask(0)
os.umask(_UMASK)
Image.MAX_IMAGE_PIXELS = 8192 * 8192  # refuse decompression bombs well before memory runs out


def decode_image(data: bytes, field: str, name: str) -> Image.Image:
    """Decode image bytes fully (so that truncation is caught here, not mid-job)."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise SpecError(field, f"{name} is not a PNG or any other image format this engine reads") from None
    except Image.DecompressionBombError:
        raise SpecError(field, f"{name} is too large to decode safely", allowed="at most 8192x8192") from None
    except (OSError, SyntaxError, ValueError) as exc:  # cut inside its header: "Truncated File Read"
        raise SpecError(field, f"{name} is corrupt or truncated ({exc})") from None
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
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs should read like any file
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
