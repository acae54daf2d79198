"""Labels on images Regia writes (contact sheets, the variations grid), drawn the same way by the add-on and the
engine, in a proportional font with accented letters. Blender's Python has no Pillow, so the glyphs come
pre-rendered (regia_contract/label_font_data.py, made by scripts/make_label_font.py). Text wraps to a width at word
boundaries; a character the font lacks draws as '?'. Pure numpy."""

from __future__ import annotations

import base64
import zlib
from functools import cache

import numpy as np

from . import label_font_data as data

HEIGHT = data.HEIGHT
MISSING_GLYPH = "?"


@cache
def glyphs() -> dict[str, np.ndarray]:
    """Each character's (HEIGHT, width) coverage in [0, 1]."""
    raw = np.frombuffer(zlib.decompress(base64.b64decode("".join(data.DATA))), dtype=np.uint8)
    found, offset = {}, 0
    for char, width in zip(data.CHARACTERS, data.WIDTHS, strict=True):  # WIDTHS: bytes, one per character
        size = HEIGHT * width
        found[char] = raw[offset : offset + size].reshape(HEIGHT, width).astype(np.float32) / 255.0
        offset += size
    return found


def _glyph(char: str) -> np.ndarray:
    table = glyphs()
    return table.get(char, table[MISSING_GLYPH])


def text_width(text: str) -> int:
    return sum(_glyph(char).shape[1] for char in text)


def _split_long(word: str, width: int) -> list[str]:
    """A word wider than the line, in pieces that fit (at least a character each)."""
    pieces, piece = [], ""
    for char in word:
        if piece and text_width(piece + char) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece] if piece else pieces


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` pixels, broken between words (a word too long for a line, inside it)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if text_width(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            *full, line = _split_long(word, width) if text_width(word) > width else [word]
            lines.extend(full)
        lines.append(line)
    return lines


def draw_text(image: np.ndarray, text: str, x: int, y: int, color: tuple[float, ...]) -> None:
    """Draw `text` into a top-down float image in place (blending by coverage), its top-left at (x, y), clipped."""
    ink = np.asarray(color, dtype=image.dtype)[: image.shape[2]]
    h, w = image.shape[:2]
    for char in text:
        glyph = _glyph(char)
        gx0, gy0 = max(0, x), max(0, y)
        gx1, gy1 = min(w, x + glyph.shape[1]), min(h, y + HEIGHT)
        if gx1 > gx0 and gy1 > gy0:
            cover = glyph[gy0 - y : gy1 - y, gx0 - x : gx1 - x, None]
            region = image[gy0:gy1, gx0:gx1]
            region[:] = region * (1 - cover) + ink * cover
        x += glyph.shape[1]
