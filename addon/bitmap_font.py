"""A 5x7 pixel font for labels on images the add-on writes (contact sheets): Blender's Python has no Pillow, and
a label drawn here looks the same in every Blender version and in tests.

Capitals, digits and common punctuation; lower case is drawn in capitals, anything else as '?'.
"""

from __future__ import annotations

import numpy as np

GLYPH_W, GLYPH_H = 5, 7
ADVANCE = GLYPH_W + 1  # one blank column between characters

# Each glyph: 7 rows of 5 columns, top row first; '#' is ink.
_GLYPHS = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "'": "..#.. ..#.. .#... ..... ..... ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "&": ".##.. #..#. .##.. .#... #.#.# #..#. .##.#",
}


def _bitmap(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


GLYPHS: dict[str, np.ndarray] = {char: _bitmap(rows) for char, rows in _GLYPHS.items()}


def text_width(text: str, scale: int = 1) -> int:
    return max(0, len(text) * ADVANCE - 1) * scale


def render_text(text: str, scale: int = 1) -> np.ndarray:
    """Ink of `text` as an (7 * scale, width) bool array."""
    out = np.zeros((GLYPH_H, max(1, len(text) * ADVANCE - 1)), dtype=bool)
    for index, char in enumerate(text):
        glyph = GLYPHS.get(char.upper(), GLYPHS["?"])
        out[:, index * ADVANCE : index * ADVANCE + GLYPH_W] = glyph
    return np.repeat(np.repeat(out, scale, axis=0), scale, axis=1)


def fit_text(text: str, width: int, scale: int = 1) -> str:
    """`text`, cut to fit `width` pixels, with '..' where it was cut."""
    if text_width(text, scale) <= width:
        return text
    keep = max(0, (width // scale + 1) // ADVANCE - 2)
    return text[:keep] + ".."


def draw_text(image: np.ndarray, text: str, x: int, y: int, color: tuple[float, ...], scale: int = 1) -> None:
    """Draw `text` into a top-down float image in place, its top-left corner at (x, y), clipped to the image."""
    ink = render_text(text, scale)
    h, w = image.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + ink.shape[1]), min(h, y + ink.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = image[y0:y1, x0:x1]
    region[ink[y0 - y : y1 - y, x0 - x : x1 - x]] = np.asarray(color, dtype=image.dtype)[: image.shape[2]]
