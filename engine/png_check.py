"""PNG files checked the way a careful server checks them, before any pixel is decoded.

`read_header` gives the size from the IHDR chunk (33 bytes in), so a file that claims 11585x11585 in 114 bytes is
refused by its size, never decoded. `check_complete` walks every chunk (CRCs, IHDR first, IEND last, nothing after
it) and inflates the image data in bounded pieces to count it: a file whose data stops early would otherwise decode
with its missing rows as zeros, and one without IEND would decode at all.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = 33  # signature, then IHDR: length, type, 13 bytes of data, CRC
INFLATE_PIECE = 1 << 16  # bytes of image data inflated at a time: memory stays flat whatever the file claims
MAX_CHUNK = (1 << 31) - 1  # the PNG specification's limit
# Channels per colour type; the bit depths each allows.
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: (x start, y start, x step, y step).
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class PngProblem(ValueError):
    """Why bytes are not a complete PNG; str() is a short reason a user can read."""


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int
    interlaced: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def raw_size(self) -> int:
        """Bytes of filtered scanlines the image data must inflate to, exactly."""
        bits = CHANNELS[self.color_type] * self.bit_depth
        if not self.interlaced:
            return self.height * (1 + (self.width * bits + 7) // 8)
        total = 0
        for x0, y0, dx, dy in ADAM7:
            columns = (self.width - x0 + dx - 1) // dx if self.width > x0 else 0
            rows = (self.height - y0 + dy - 1) // dy if self.height > y0 else 0
            if columns and rows:
                total += rows * (1 + (columns * bits + 7) // 8)
        return total


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_header(data: bytes) -> PngHeader:
    """The IHDR fields, from the first 33 bytes; PngProblem when they are not a PNG header."""
    if not is_png(data):
        raise PngProblem("not a PNG (no PNG signature)")
    if len(data) < HEADER_BYTES:
        raise PngProblem("the file ends inside its header")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise PngProblem("the first chunk is not a 13-byte IHDR")
    if zlib.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
        raise PngProblem("the header's checksum is wrong (IHDR CRC)")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if not (0 < width <= MAX_CHUNK and 0 < height <= MAX_CHUNK):
        raise PngProblem(f"the header claims an impossible size {width}x{height}")
    if color not in CHANNELS or depth not in BIT_DEPTHS[color]:
        raise PngProblem(f"colour type {color} with bit depth {depth} is not a PNG pixel format")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise PngProblem("unknown compression, filter or interlace method in the header")
    return PngHeader(width, height, depth, color, interlace == 1)


def _chunks(data: bytes):
    """(type, data start, data end) of each chunk after the signature, CRCs checked."""
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        if offset + 8 > len(data):
            raise PngProblem("the file ends inside a chunk header")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if length > MAX_CHUNK or not kind.isalpha():
            raise PngProblem(f"a damaged chunk at byte {offset}")
        start, end = offset + 8, offset + 8 + length
        if end + 4 > len(data):
            raise PngProblem(f"the file ends inside its {kind.decode('ascii')} chunk (data cut short)")
        if zlib.crc32(data[offset + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            raise PngProblem(f"the {kind.decode('ascii')} chunk at byte {offset} is damaged (CRC mismatch)")
        yield kind, start, end
        offset = end + 4


def check_complete(data: bytes, header: PngHeader | None = None) -> PngHeader:
    """Every chunk whole, IEND last with nothing after it, and exactly the image data the header calls for.

    Memory stays flat: the data is inflated INFLATE_PIECE bytes at a time and only counted."""
    header = header or read_header(data)
    inflater = zlib.decompressobj()
    produced, expected = 0, header.raw_size()
    seen_idat = idat_done = seen_plte = ended = False
    for kind, start, end in _chunks(data):
        if ended:
            raise PngProblem("data follows the IEND chunk")
        if kind == b"IDAT":
            if idat_done:
                raise PngProblem("the image data (IDAT) is split by other chunks")
            seen_idat = True
            pending = data[start:end]
            while pending:
                try:
                    out = inflater.decompress(pending, INFLATE_PIECE)
                except zlib.error as exc:
                    raise PngProblem(f"the image data is damaged ({exc})") from None
                produced += len(out)
                if produced > expected:
                    raise PngProblem("the image data is longer than the header's size calls for")
                pending = inflater.unconsumed_tail
        else:
            idat_done = idat_done or seen_idat
            seen_plte = seen_plte or kind == b"PLTE"
            ended = kind == b"IEND"
    if not ended:
        raise PngProblem("the file has no end chunk (IEND): it was cut short")
    if not seen_idat:
        raise PngProblem("the file has no image data (IDAT)")
    if header.color_type == 3 and not seen_plte:
        raise PngProblem("a palette image without its palette (PLTE)")
    while not inflater.eof:  # data buffered inside zlib: drain it, still in pieces
        out = inflater.decompress(b"", INFLATE_PIECE)
        if not out:
            raise PngProblem("the image data ends early: rows are missing")
        produced += len(out)
        if produced > expected:
            raise PngProblem("the image data is longer than the header's size calls for")
    if produced < expected:
        raise PngProblem(f"the image data ends early: {expected - produced} of {expected} bytes of rows are missing")
    return header
