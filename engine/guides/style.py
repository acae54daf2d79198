"""Style: the region's masked feature statistics match those of a reference image.

Every style term of a job goes through one StyleBank, so that a step computes the statistics of
all regions and the distances of all style terms in a few batched operations.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch
from PIL import Image

from ..features import RandomFeatureNet, RegionSupport, Shift, image_stats, style_distance
from ..filters import resize_to
from ..images import to_rgb
from ..placement import BuildContext, Placement, as_tensor
from .base import GuideTerm, StepContext

Stats = list[tuple[torch.Tensor, torch.Tensor]]


class StyleTerm(GuideTerm):
    kind = "style"
    min_scale = 1e-3

    def __init__(self, key: str, weight: float, index: int, style_region: int, target: Stats):
        super().__init__(key, weight)
        self.index = index  # this term's row in the StyleBank
        self.style_region = style_region  # its region's row among the regions with style guides
        self.target = target

    def raw(self, ctx: StepContext) -> torch.Tensor:
        return ctx.style_distances[self.index]


class StyleBank:
    """The regions with style guides, their supports, and every style term's target, stacked."""

    def __init__(self, masks: torch.Tensor, terms: list[StyleTerm]):
        self.masks = masks  # (S, 1, H, W): one per region that has a style guide
        self.rows = torch.tensor([term.style_region for term in terms], device=masks.device)
        self.targets = [
            (torch.cat([t.target[layer][0] for t in terms]), torch.cat([t.target[layer][1] for t in terms]))
            for layer in range(len(terms[0].target))
        ]
        self.support: RegionSupport | None = None

    def distances(self, features: list[torch.Tensor], strides: list[int], shift: Shift) -> torch.Tensor:
        """Style distance of every term, shape (T,), from features jittered by `shift`."""
        if self.support is None:  # the feature maps' sizes are known from the first step on
            self.support = RegionSupport(self.masks, [tuple(f.shape[-2:]) for f in features], strides)
        mine = []
        for layer, feature in enumerate(features):
            mean, gram = self.support.stats(layer, feature, shift)
            mine.append((mean.index_select(0, self.rows), gram.index_select(0, self.rows)))
        return style_distance(mine, self.targets)


def style_target(net: RandomFeatureNet, reference: torch.Tensor) -> Stats:
    """Statistics of a reference image, computed once per job (and shareable across jobs)."""
    with torch.no_grad():
        return image_stats(net(reference))


class StyleStatsCache:
    """Style statistics by (reference pixels' digest, canvas size, device), least recently used first out.

    A reference's statistics depend only on its pixels, the canvas area it is scaled to and the fixed-seed
    feature net of the device, so every shot of a storyboard and every job of a long-running server can share
    them. Lookups are thread-safe (the server runs one worker per device); a value is computed outside the lock.
    """

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self.computed = 0  # statistics computed (misses): tests check a second job computes none
        self._entries: OrderedDict[tuple, Stats] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.computed = 0

    def get(self, key: tuple, compute: Callable[[], Stats]) -> Stats:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        stats = compute()
        with self._lock:
            self.computed += 1
            self._entries[key] = stats
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return stats


STYLE_CACHE = StyleStatsCache()


def pixels_digest(image: Image.Image) -> str:
    """sha256 of an image's RGB pixels and size: the same picture gives the same key whatever file holds it."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def cached_style_target(
    net: RandomFeatureNet,
    image: Image.Image,
    canvas: tuple[int, int],
    device: torch.device,
    reference: Callable[[], torch.Tensor],
    cache: StyleStatsCache = STYLE_CACHE,
) -> Stats:
    """style_target of `reference()` (the image scaled for a canvas of (width, height)), computed once per
    process for the same pixels, canvas size and device."""
    key = (pixels_digest(image), canvas, str(device))
    return cache.get(key, lambda: style_target(net, reference()))


def _style_reference(image: Image.Image, width: int, height: int, device: torch.device) -> torch.Tensor:
    """Reference scaled to about the canvas's area, keeping its aspect, so texture scale matches."""
    tensor = as_tensor(to_rgb(image), device)
    h, w = tensor.shape[-2:]
    scale = ((width * height) / (w * h)) ** 0.5
    return resize_to(tensor, max(16, round(h * scale)), max(16, round(w * scale)))


def build_style(guide, place: Placement, ctx: BuildContext) -> StyleTerm:
    """A style term in the job's StyleBank: one statistics target per reference image, shared by its uses."""
    if guide.image not in ctx.style_targets:
        image = ctx.loader.open(guide.image, f"{place.path}.image")
        reference = partial(_style_reference, image, ctx.width, ctx.height, ctx.device)
        ctx.style_targets[guide.image] = cached_style_target(
            ctx.net, image, (ctx.width, ctx.height), ctx.device, reference
        )
    term = StyleTerm(
        place.key, guide.weight, len(ctx.style_terms), ctx.style_rows.index(place.row), ctx.style_targets[guide.image]
    )
    ctx.style_terms.append(term)
    return term
