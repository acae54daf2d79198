"""Region masks from paint layers: a painted grayscale image, or one colour of a shared region-map image.

Pure numpy. Images come in as top-down (h, w, 4) float arrays of display (sRGB) values in [0, 1].
"""

from __future__ import annotations

import numpy as np

# Rec. 709 luma: a grey brush reads as its grey level whatever the paint layer's colour management.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# A colour-key pixel belongs to a key when its RGB is this close (Euclidean, 0..1 units); brush edges that blend two
# keys fall between them and go to neither, which is why the mask is then lightly dilated by the engine's feather.
DEFAULT_KEY_TOLERANCE = 0.12
EMPTY_LEVEL = 1.0 / 255.0


def paint_mask(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """A painted region: white is in, black is out, transparent is out."""
    mask = (image[..., :3] @ _LUMA) * image[..., 3]
    mask = np.clip(mask, 0.0, 1.0).astype(np.float32)
    return 1.0 - mask if invert else mask


def color_key_mask(
    image: np.ndarray, key: tuple[float, float, float], tolerance: float = DEFAULT_KEY_TOLERANCE
) -> np.ndarray:
    """Pixels of the region map painted in `key` (within `tolerance`), as a hard 0/1 mask."""
    distance = np.linalg.norm(image[..., :3] - np.asarray(key, dtype=np.float32), axis=-1)
    return ((distance <= tolerance) & (image[..., 3] > 0.5)).astype(np.float32)


def is_empty(mask: np.ndarray) -> bool:
    """True when no pixel reaches one 8-bit level: the engine would see an all-black mask."""
    return not bool(np.any(mask >= EMPTY_LEVEL))


def distinct_colors(
    image: np.ndarray, max_colors: int = 16, min_fraction: float = 0.001
) -> list[tuple[float, float, float]]:
    """The main colours painted in a region map (quantised to 8 bits), most common first; black and transparent
    are background. For 'add a region per colour'."""
    opaque = image[..., 3] > 0.5
    rgb = np.round(np.clip(image[..., :3][opaque], 0, 1) * 255).astype(np.int64)
    if rgb.size == 0:
        return []
    codes = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    order = np.argsort(-counts)
    out: list[tuple[float, float, float]] = []
    for code, count in zip(values[order], counts[order], strict=True):
        if code == 0 or count < min_fraction * image.shape[0] * image.shape[1]:
            continue
        out.append((((code >> 16) & 255) / 255.0, ((code >> 8) & 255) / 255.0, (code & 255) / 255.0))
        if len(out) == max_colors:
            break
    return out
