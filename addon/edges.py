"""Outline drawings from renders, pure numpy: Sobel edges of a blockout's shading and of its normal/alpha pass,
drawn as dark lines on white paper, the way the engine's `outline` guide reads a drawing.

Images are top-down (h, w, c) floats in [0, 1].
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# A black-to-white step gives a Sobel response of 4 (|1 + 2 + 1|): divided by it, a full step reads 1.
_SOBEL_STEP = 4.0
# Shading varies smoothly across a surface; a crease or a silhouette is a jump. Renders with few samples are
# noisy, so shading edges must be stronger than normal/alpha edges, which are flat colours (emission).
LUMA_THRESHOLD = 0.2
PASS_THRESHOLD = 0.2


def luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3] @ _LUMA).astype(np.float32)


def box_blur(image: np.ndarray) -> np.ndarray:
    """3x3 mean with edge padding: takes the per-pixel noise of a few-sample render out before differentiating."""
    padded = np.pad(image, [(1, 1), (1, 1)] + [(0, 0)] * (image.ndim - 2), mode="edge")
    h, w = image.shape[:2]
    return sum(padded[y : y + h, x : x + w] for y in range(3) for x in range(3)) / 9.0


def sobel(image: np.ndarray) -> np.ndarray:
    """Gradient magnitude of an (h, w) or (h, w, c) image (the largest over channels), 1.0 for a full step."""
    padded = np.pad(image, [(1, 1), (1, 1)] + [(0, 0)] * (image.ndim - 2), mode="edge").astype(np.float32)
    h, w = image.shape[:2]

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    magnitude = np.sqrt(gx * gx + gy * gy) / _SOBEL_STEP
    return magnitude.max(axis=-1) if magnitude.ndim == 3 else magnitude


def edges(
    shading: np.ndarray,
    normals: np.ndarray | None = None,
    luma_threshold: float = LUMA_THRESHOLD,
    pass_threshold: float = PASS_THRESHOLD,
) -> np.ndarray:
    """Where a render has edges, as an (h, w) bool: jumps in the shaded image's luminance, and jumps in a normal
    pass (RGBA: normal colours, alpha = coverage, so silhouettes show against any background)."""
    found = sobel(box_blur(luminance(shading))) > luma_threshold
    if normals is not None:
        found |= sobel(normals[..., :4] if normals.shape[-1] >= 4 else normals[..., :3]) > pass_threshold
    return found


def outline_drawing(found: np.ndarray) -> np.ndarray:
    """Dark lines on white paper, opaque: (h, w, 4) float."""
    image = np.ones((*found.shape, 4), dtype=np.float32)
    image[found, :3] = 0.0
    return image
