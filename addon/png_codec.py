"""PNG encoding with zlib and struct only: Blender bundles numpy but not Pillow, and the engine takes PNG blobs.

Row 0 of an array is the image's top row (Blender's pixel buffers start at the bottom: flip them first).
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour type by channel count: gray, gray + alpha, RGB, RGBA (8 bits each).
COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
FILTER_UP = 2  # each byte minus the byte above it: photos and masks compress better, and numpy does it in one pass
DEFAULT_LEVEL = 1  # zlib's fastest: a 2048² RGBA encodes in a fraction of a second; the bytes stay on loopback


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 as is; floats in [0, 1] scaled to 0..255 and rounded (outside clipped, NaN as 0)."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        scaled = array.astype(np.float32)  # a copy, worked on in place: Blender's float buffers are large
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(scaled, 0.0, 1.0, out=scaled)
        scaled *= np.float32(255.0)
        return np.rint(scaled, out=scaled).astype(np.uint8)
    raise ValueError(f"cannot encode pixels of type {array.dtype}: allowed are uint8 and floats in [0, 1]")


def _as_hwc(array: np.ndarray) -> np.ndarray:
    """Height x width x channels, with 1 to 4 channels."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in COLOR_TYPES:
        raise ValueError(
            f"cannot encode an array of shape {array.shape}: allowed are H x W (gray) and H x W x C with C in 1..4"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"cannot encode an empty image of shape {array.shape}")
    return array


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _filtered_rows(pixels: np.ndarray) -> bytes:
    """Scanlines, each a filter byte then the row minus the row above (the first row's "above" is zeros)."""
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    out = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = FILTER_UP
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG wants
    return out.tobytes()


def encode_png(array: np.ndarray, level: int = DEFAULT_LEVEL) -> bytes:
    """A PNG of an H x W, H x W x 1 (gray), H x W x 2 (gray, alpha), H x W x 3 (RGB) or H x W x 4 (RGBA) array.

    uint8 is written as is; floats in [0, 1] are rounded to 8 bits.
    """
    pixels = _as_hwc(_to_uint8(np.ascontiguousarray(array)))
    height, width, channels = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0)
    data = zlib.compress(_filtered_rows(pixels), level)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def sha256_hex(data: bytes) -> str:
    """The blob name the engine stores bytes under (64 lowercase hex digits)."""
    return hashlib.sha256(data).hexdigest()
