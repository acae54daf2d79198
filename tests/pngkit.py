"""PNG files made byte by byte for the hardening tests: bombs, cut files, files without their end.

Written with struct and zlib only (not the engine's code), so the tests do not check the engine against itself.
Import with `import pngkit` after putting tests/ on sys.path.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ihdr(width: int, height: int, depth: int = 8, color: int = 2, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))


def header_only_bomb(width: int = 11585, height: int = 11585) -> bytes:
    """About 120 bytes that claim width x height RGB: one row of data, then the end (Pillow opens it, and allocates
    the whole image when asked to decode it)."""
    row = b"\x00" * (1 + 3 * width)
    return SIGNATURE + ihdr(width, height) + chunk(b"IDAT", zlib.compress(row, 9)) + IEND


def complete_bomb(width: int = 11585, height: int = 11585) -> bytes:
    """A whole, valid 1-bit gray PNG of width x height black pixels: about 17 KB on disk, 134 million pixels when
    decoded (400 MB as RGB, 1.6 GB as the engine's float32)."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return SIGNATURE + ihdr(width, height, depth=1, color=0) + chunk(b"IDAT", data) + IEND


def rgb_png(width: int, height: int, rows: int | None = None, with_end: bool = True) -> bytes:
    """A gray-ramp RGB PNG; `rows` < height writes a zlib stream that ends (properly) after that many rows."""
    raw = b"".join(b"\x00" + bytes((x + y) % 256 for x in range(width) for _ in range(3)) for y in range(height))
    kept = raw[: (rows if rows is not None else height) * (1 + 3 * width)]
    return SIGNATURE + ihdr(width, height) + chunk(b"IDAT", zlib.compress(kept)) + (IEND if with_end else b"")


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def gray_value(x: int, y: int) -> int:
    return (x * 7 + y * 3) % 256


def interlaced_gray(width: int, height: int) -> bytes:
    """An Adam7-interlaced 8-bit gray PNG of gray_value(x, y) (Pillow reads these but does not write them)."""
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        columns, rows = range(x0, width, dx), range(y0, height, dy)
        if columns and rows:
            raw += b"".join(b"\x00" + bytes(gray_value(x, y) for x in columns) for y in rows)
    return SIGNATURE + ihdr(width, height, 8, 0, interlace=1) + chunk(b"IDAT", zlib.compress(raw)) + IEND
