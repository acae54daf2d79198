"""Pixel arrays between Blender's layout and the engine's, as pure numpy.

Blender keeps `Image.pixels` as flat RGBA floats with rows from the BOTTOM up; numpy images here (and PNGs) have
row 0 at the TOP. Byte images hold sRGB-encoded values, float images hold linear ones.
"""

from __future__ import annotations

import numpy as np


def from_blender(flat: np.ndarray, width: int, height: int, channels: int = 4) -> np.ndarray:
    """Blender's flat bottom-up pixels as a top-down (height, width, channels) float32 array."""
    return np.ascontiguousarray(np.asarray(flat, dtype=np.float32).reshape(height, width, channels)[::-1])


def to_blender(image: np.ndarray) -> np.ndarray:
    """A top-down (height, width, 4) image as Blender's flat bottom-up float32 pixels."""
    return np.ascontiguousarray(image[::-1], dtype=np.float32).ravel()


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1), for float images whose pixels Blender stores linear."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def rgba(image: np.ndarray) -> np.ndarray:
    """Any (h, w), (h, w, 1|3|4) image as (h, w, 4) float32, alpha 1 where it had none."""
    if image.ndim == 2:
        image = image[..., None]
    h, w, c = image.shape
    out = np.ones((h, w, 4), dtype=np.float32)
    if c in (1, 2):
        out[..., :3] = image[..., :1]
        if c == 2:
            out[..., 3] = image[..., 1]
    else:
        out[..., : min(c, 4)] = image[..., :4]
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats to bytes, rounding to nearest, as a PNG stores them."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (h, w[, c]) float image. Shrinking averages whole source areas (no aliasing); growing is bilinear."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.astype(np.float32, copy=False)
    out = _resize_axis(image.astype(np.float32, copy=False), height, axis=0)
    return _resize_axis(out, width, axis=1)


def _resize_axis(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    n = image.shape[axis]
    if n == size:
        return image
    if size < n:
        # Area average: each output cell integrates the source over its span, as a box filter on the interval.
        edges = np.linspace(0.0, n, size + 1)
        cumulative = np.concatenate([np.zeros_like(np.take(image, [0], axis=axis)), np.cumsum(image, axis=axis)], axis)
        lo, hi = edges[:-1], edges[1:]
        return (_interp_cumulative(cumulative, hi, axis) - _interp_cumulative(cumulative, lo, axis)) / (
            _shape_for(hi - lo, image.ndim, axis)
        )
    # Bilinear with pixel centres aligned (align_corners=False).
    centres = (np.arange(size) + 0.5) * n / size - 0.5
    centres = np.clip(centres, 0, n - 1)
    i0 = np.floor(centres).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    t = _shape_for((centres - i0).astype(np.float32), image.ndim, axis)
    return np.take(image, i0, axis=axis) * (1 - t) + np.take(image, i1, axis=axis) * t


def _interp_cumulative(cumulative: np.ndarray, at: np.ndarray, axis: int) -> np.ndarray:
    """The running sum at fractional positions: linear between whole-pixel sums."""
    i0 = np.floor(at).astype(np.int64)
    i1 = np.minimum(i0 + 1, cumulative.shape[axis] - 1)
    t = _shape_for((at - i0).astype(np.float32), cumulative.ndim, axis)
    return np.take(cumulative, i0, axis=axis) * (1 - t) + np.take(cumulative, i1, axis=axis) * t


def _shape_for(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values, dtype=np.float32).reshape(shape)
