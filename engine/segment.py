"""Segment an image into parts an artist can keep, edit or embolden: scikit-image's SLIC (compact superpixels of
about equal size) or Felzenszwalb's graph method (parts that follow the image's own edges), then a colour-key region
map with one flat colour per part, as the add-on's colour-key regions read it.

`parts` is the artist's size slider: about how many parts to make. SLIC takes it as its segment count; Felzenszwalb
has no count, so its scale follows the image's area per part. Then, for both, the smallest part is merged into the
neighbour of nearest mean colour until at most `parts` remain and none is tiny. Every part is one connected piece.

Key colours lie on a 5-level grid of the RGB cube (black left out): any two differ by at least 0.247 in 0..1 units (a
quarter of the range, in 8 bits), so the add-on's colour-key tolerance (0.12) takes each part alone.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from .segment_options import DEFAULT_PARTS, MAX_PARTS, METHODS, MIN_PARTS

__all__ = ["DEFAULT_PARTS", "MAX_PARTS", "METHODS", "MIN_PARTS", "Part", "SegmentRequest", "Segmentation", "segment"]
KEY_LEVELS = 5  # per channel: 124 key colours at least a quarter of the range apart
MIN_SHARE = 16  # no part under 1/16 of an even share of the image
WORK_SIDE = 768  # segmentation runs at most this many pixels a side; labels are scaled back up
SLIC_COMPACTNESS = 10.0  # scikit-image's default: shapes between the image's edges and squares
FELZENSZWALB_SIGMA = 0.8


class SegmentRequest(BaseModel):
    """What to segment and how (the server's POST /segment body, the CLI's options)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    image: str = Field(min_length=1, max_length=300, description="blob:<sha256> over HTTP; a path on the command line")
    method: Literal[METHODS] = "slic"  # type: ignore[valid-type]
    parts: int = Field(default=DEFAULT_PARTS, ge=MIN_PARTS, le=MAX_PARTS, description="About how many parts")


@dataclass(frozen=True)
class Part:
    index: int  # 1-based, largest first
    color: tuple[int, int, int]  # its key colour in the region map, 8-bit sRGB
    pixels: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), top-down

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.color)

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "color": self.hex, "pixels": self.pixels, "box": list(self.box)}


@dataclass(frozen=True)
class Segmentation:
    labels: np.ndarray  # (H, W) int32: 0 .. len(parts) - 1, part k is parts[k]
    parts: list[Part]

    def region_map(self) -> np.ndarray:
        """(H, W, 3) uint8: every pixel painted in its part's key colour."""
        colors = np.array([part.color for part in self.parts], dtype=np.uint8)
        return colors[self.labels]


def key_colors(count: int) -> list[tuple[int, int, int]]:
    """`count` colours, pairwise at least 1/(KEY_LEVELS-1) apart per unit cube, in an order that puts far colours
    next to each other (parts made one after another are often neighbours)."""
    steps = np.linspace(0, 255, KEY_LEVELS).round().astype(int)
    grid = [(int(r), int(g), int(b)) for r in steps for g in steps for b in steps if (r, g, b) != (0, 0, 0)]
    if count > len(grid):
        raise ValueError(f"at most {len(grid)} key colours")
    order = np.random.default_rng(0).permutation(len(grid))  # fixed: the same parts get the same colours
    return [grid[i] for i in order[:count]]


def _slic(pixels: np.ndarray, parts: int) -> np.ndarray:
    from skimage.segmentation import slic

    # SLIC's count is a grid's: it often makes fewer than asked. Ask for more until there are enough to merge down.
    asked = parts
    for _ in range(6):
        labels = slic(pixels, n_segments=asked, compactness=SLIC_COMPACTNESS, start_label=0, enforce_connectivity=True)
        if int(labels.max()) + 1 >= parts:
            break
        asked = asked * 2
    return labels


def _felzenszwalb(pixels: np.ndarray, parts: int) -> np.ndarray:
    from skimage.segmentation import felzenszwalb

    area = pixels.shape[0] * pixels.shape[1]
    per_part = area / parts
    return felzenszwalb(pixels, scale=per_part**0.5 * 4, sigma=FELZENSZWALB_SIGMA, min_size=int(per_part / 8))


def _connected(labels: np.ndarray) -> np.ndarray:
    """Every label one connected piece (4-connectivity): a label in two pieces becomes two."""
    out = np.zeros_like(labels, dtype=np.int32)
    next_label = 0
    for value in np.unique(labels):
        pieces, count = ndimage.label(labels == value)
        inside = pieces > 0
        out[inside] = pieces[inside] - 1 + next_label
        next_label += count
    return out


def _borders(labels: np.ndarray) -> dict[int, dict[int, int]]:
    """For each label, its neighbours and the length of border it shares with each (4-connectivity)."""
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
        ]
    )
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    borders: dict[int, dict[int, int]] = {}
    for (a, b), length in zip(unique.tolist(), counts.tolist(), strict=True):
        borders.setdefault(a, {})[b] = length
        borders.setdefault(b, {})[a] = length
    return borders


def _merge_small(labels: np.ndarray, pixels: np.ndarray, limit: int, min_pixels: int) -> np.ndarray:
    """Merge the smallest part into the neighbour whose mean colour is nearest, while more than `limit` remain or
    the smallest is under `min_pixels` (a region adjacency graph, so each merge costs its neighbours, not a pass
    over the image)."""
    flat = labels.ravel()
    sizes = np.bincount(flat).astype(np.int64)
    sums = np.stack([np.bincount(flat, pixels[..., c].ravel(), len(sizes)) for c in range(3)], 1)
    alive = {int(v) for v in np.flatnonzero(sizes)}
    borders = _borders(labels)
    target = np.arange(len(sizes))
    queue = [(int(sizes[v]), v) for v in alive]
    heapq.heapify(queue)
    while queue and len(alive) > 1:
        size, label = heapq.heappop(queue)
        if label not in alive or size != sizes[label]:
            continue  # merged away, or grown since it was queued
        if len(alive) <= limit and size >= min_pixels:
            break
        neighbours = borders.pop(label, {})
        if not neighbours:
            continue  # the only part there is
        mean = sums[label] / size
        into = min(neighbours, key=lambda n: (float(np.sum((sums[n] / sizes[n] - mean) ** 2)), -neighbours[n], n))
        alive.discard(label)
        target[label] = into
        sizes[into] += sizes[label]
        sums[into] += sums[label]
        for other, length in neighbours.items():
            del borders[other][label]
            if other != into:
                borders[other][into] = borders[other].get(into, 0) + length
                borders[into][other] = borders[into].get(other, 0) + length
        heapq.heappush(queue, (int(sizes[into]), into))
    for label in range(len(target)):  # follow each label to the part it ended in
        while target[target[label]] != target[label]:
            target[label] = target[target[label]]
    return target[labels]


def min_pixels(pixels: np.ndarray, parts: int) -> int:
    """Parts smaller than this are merged away: a 16th of an even share of the image."""
    return int(pixels.shape[0] * pixels.shape[1] / (parts * MIN_SHARE))


def _working_size(pixels: np.ndarray) -> np.ndarray:
    """The image at most WORK_SIDE pixels a side: parts for a region map need no more, and it bounds the time."""
    height, width = pixels.shape[:2]
    scale = WORK_SIDE / max(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def _full_size(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour labels at the image's own size."""
    rows = np.minimum((np.arange(height) + 0.5) * labels.shape[0] / height, labels.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(width) + 0.5) * labels.shape[1] / width, labels.shape[1] - 1).astype(int)
    return labels[rows[:, None], cols[None, :]]


def segment(pixels: np.ndarray, method: str = "slic", parts: int = DEFAULT_PARTS) -> Segmentation:
    """Parts of an (H, W, 3) uint8 image, largest first, each with its key colour and bounds."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: {', '.join(METHODS)}")
    small = _working_size(pixels)
    raw = _slic(small, parts) if method == "slic" else _felzenszwalb(small, parts)
    labels = _merge_small(_connected(raw), small, parts, min_pixels(small, parts))
    if small.shape != pixels.shape:  # nearest-neighbour scaling can split a thin part: make each whole again
        whole = _connected(_full_size(labels, *pixels.shape[:2]))
        labels = _merge_small(whole, pixels, parts, min_pixels(pixels, parts))
    values, counts = np.unique(labels, return_counts=True)
    order = values[np.argsort(-counts, kind="stable")]
    relabel = np.zeros(int(values.max()) + 1, dtype=np.int32)
    relabel[order] = np.arange(len(order), dtype=np.int32)
    labels = relabel[labels]
    colors = key_colors(len(order))
    found = []
    for index, box in enumerate(ndimage.find_objects(labels + 1)):
        rows, cols = box
        found.append(
            Part(
                index=index + 1,
                color=colors[index],
                pixels=int(np.count_nonzero(labels[box] == index)),
                box=(cols.start, rows.start, cols.stop, rows.stop),
            )
        )
    return Segmentation(labels=labels, parts=found)
