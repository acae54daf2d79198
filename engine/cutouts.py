"""Square cutouts per region for CLIP, all regions' cutouts in one batch: the budget, the boxes, the entry point.

CLIP guidance (VQGAN-CLIP, pixray) scores many random square crops of the image, resized to CLIP's input
size and augmented, rather than the whole image once. Here every guided region gets its own crops, placed
inside the region's bounding box with centres drawn from its mask, and its share of the budget follows its
area. All regions' crops come out as one (N, 3, S, S) batch, so one CLIP forward serves every region.

This module shares the budget among regions (`allocate_cutouts`), plans each step's boxes (`CutoutPlanner`) and
runs a step (`RegionCutouts`). Boxes are planned on the CPU from a `torch.Generator`, so a job is deterministic
whatever the device; the region statistics the plan needs are copied to the host once per mask tensor, and each
step only moves a few small tensors to the device, in one copy. The crops themselves are cutout_crops.py's, the
augmentations cutout_augment.py's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from .cutout_augment import AugmentParams, CutoutAugment
from .cutout_crops import make_cutouts, upload

BOUNDS_THRESHOLD = 0.01  # feathered masks have long faint tails that should not widen a region's box
CENTRE_GRID = 128  # centres are drawn from the mask pooled to at most this many cells a side
COVERAGE_SAMPLES = 16  # bilinear samples per box side when measuring how much of a box is in its region


def allocate_cutouts(areas: Sequence[float], total: int, minimum: int) -> list[int]:
    """Each region's share of `total` cutouts, following its area, at least `minimum` each.

    Regions of zero area get none (nothing of them is guided); the others share `max(total, minimum * R)`.
    Regions whose proportional share is under the minimum are pinned to it and the rest is shared again
    among the others, so large regions are not taxed for rounding; the shares are then rounded by largest
    remainder so they add up exactly.
    """
    if total < 0 or minimum < 0:
        raise ValueError(f"total and minimum must be non-negative, got {total} and {minimum}")
    if any(area < 0 or not math.isfinite(area) for area in areas):
        raise ValueError(f"areas must be finite and non-negative, got {list(areas)}")
    live = [i for i, area in enumerate(areas) if area > 0]
    counts = [0] * len(areas)
    if not live:
        return counts
    budget = max(total, minimum * len(live))
    pinned: set[int] = set()
    while True:
        free = [i for i in live if i not in pinned]
        left = budget - minimum * len(pinned)
        free_area = sum(areas[i] for i in free)
        quotas = {i: left * areas[i] / free_area for i in free}
        short = {i for i in free if quotas[i] < minimum}
        if not short:
            break
        pinned |= short
    for i in pinned:
        counts[i] = minimum
    for i in free:
        counts[i] = math.floor(quotas[i])
    spare = budget - sum(counts)
    # Largest remainder first; ties go to the earlier region so the result does not depend on float noise order.
    for i in sorted(free, key=lambda i: (-(quotas[i] - counts[i]), i))[:spare]:
        counts[i] += 1
    return counts


def region_bounds(weights: torch.Tensor, threshold: float = BOUNDS_THRESHOLD) -> torch.Tensor:
    """(R, 4) long (y0, x0, y1, x1), ends exclusive, of each region's pixels weighing more than
    `threshold`; all zeros for a region with none."""
    on = weights[:, 0] > threshold  # (R, H, W)
    rows, cols = on.any(2), on.any(1)  # (R, H), (R, W)
    height, width = rows.shape[1], cols.shape[1]
    # argmax returns the first maximum: the first row or column that has a pixel, from either end.
    y0 = rows.int().argmax(1)
    x0 = cols.int().argmax(1)
    y1 = height - rows.flip(1).int().argmax(1)
    x1 = width - cols.flip(1).int().argmax(1)
    bounds = torch.stack([y0, x0, y1, x1], 1)
    return torch.where(rows.any(1)[:, None], bounds, torch.zeros_like(bounds))


@dataclass
class CutoutPlan:
    """Where the cutouts of one step go. boxes: (N, 4) float (y0, x0, y1, x1) in pixels, ends exclusive;
    region: (N,) long row of the weights each belongs to; weights: (N,) mean mask weight inside each box."""

    boxes: torch.Tensor
    region: torch.Tensor
    weights: torch.Tensor


class CutoutPlanner:
    """Samples cutout boxes inside each region; built once per set of masks, sampled every step.

    Sizes follow pixray/VQGAN-CLIP, `min + (max - min) * rand ** cut_pow` (a larger cut_pow favours small
    cutouts), where max is the longer side of the region's bounds (at least min_pixels, at most the image's
    shorter side) and min a fraction of it, at least min_pixels. Each centre is drawn from the mask itself,
    then moved just enough for the box to lie inside the bounds; a box longer than the bounds on one axis is
    centred on them there, and kept inside the image.

    `wrap` (a tileable canvas): on an axis where a region's bounds span the whole image, the image has no edge, so
    its boxes stay on the centres drawn and may cross the edge: such a box starts inside the image and ends up to
    its size past it (make_cutouts with wrap reads the image tiled).
    """

    def __init__(
        self,
        weights: torch.Tensor,
        total: int,
        minimum: int,
        cut_pow: float = 1.0,
        min_fraction: float = 0.25,
        min_pixels: int = 16,
        wrap: bool = False,
    ):
        masks = weights.detach().float().cpu()  # the one host copy of the masks
        self.masks = masks
        self.cut_pow = cut_pow
        height, width = masks.shape[-2:]
        self.image_size = (height, width)
        self.bounds = region_bounds(masks)
        self.wrap = wrap
        # (R, 2): the axes on which a region's boxes may cross the image's edge
        self.open = (self.bounds[:, 2:] - self.bounds[:, :2] == torch.tensor([height, width])) & wrap
        self.coverage_masks = masks.repeat(1, 1, 2, 2) if wrap else masks  # boxes past the edge read it wrapped
        # A region without pixels over the bounds threshold has no box to put cutouts in.
        has_box = (self.bounds[:, 2:] > self.bounds[:, :2]).all(1)
        self.counts = allocate_cutouts((masks.sum((1, 2, 3)) * has_box).tolist(), total, minimum)
        self.region = torch.arange(len(self.counts)).repeat_interleave(torch.tensor(self.counts, dtype=torch.long))
        spans = (self.bounds[:, 2:] - self.bounds[:, :2]).float()  # (R, 2) height, width
        # A region smaller than min_pixels still gets cutouts of min_pixels, centred on it: blowing a few pixels
        # up to CLIP's size would show it only blur.
        self.max_size = spans.max(1).values.clamp(min=min_pixels).clamp(max=min(height, width))
        self.min_size = torch.minimum((self.max_size * min_fraction).clamp(min=min_pixels), self.max_size)
        self.cell = max(1, math.ceil(max(height, width) / CENTRE_GRID))
        # Sums of the weights per cell (not means), so clipped edge cells are not over-weighted.
        mass = F.avg_pool2d(masks, self.cell, ceil_mode=True, divisor_override=1)[:, 0]  # (R, gh, gw)
        self.grid_width = mass.shape[-1]
        mass = mass.flatten(1).clamp_min(0)
        # multinomial refuses an all-zero row; such regions get no cutouts, so any distribution will do.
        self.centre_mass = torch.where(mass.sum(1, keepdim=True) > 0, mass, torch.ones_like(mass))

    @property
    def total(self) -> int:
        return int(self.region.numel())

    def sample(self, generator: torch.Generator) -> CutoutPlan:
        """One step's boxes, on the CPU; the same generator state gives the same boxes."""
        n = self.total
        if n == 0:
            return CutoutPlan(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))
        region = self.region
        rand = torch.rand(n, generator=generator)
        min_size, max_size = self.min_size[region], self.max_size[region]
        size = (min_size + (max_size - min_size) * rand.pow(self.cut_pow))[:, None]  # (N, 1)
        bounds = self.bounds[region].float()
        # Where the centre may go for the box to stay inside the bounds; a box longer than the bounds on an
        # axis has one place there, their middle.
        lo, hi = bounds[:, :2] + size / 2, bounds[:, 2:] - size / 2
        middle = (bounds[:, :2] + bounds[:, 2:]) / 2
        fits = lo <= hi
        lo, hi = torch.where(fits, lo, middle), torch.where(fits, hi, middle)
        drawn = self._centres(generator)
        centre = torch.minimum(torch.maximum(drawn, lo), hi)
        # Keep a box longer than the bounds inside the image; the image's shorter side is at least max_size.
        limits = torch.tensor(self.image_size, dtype=torch.float32)
        centre = torch.minimum(torch.maximum(centre, size / 2), limits - size / 2)
        if self.wrap:
            centre = torch.where(self.open[region], drawn, centre)
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
        if self.wrap:  # the same box on the torus, starting inside the image
            boxes = boxes - (boxes[:, :2] / limits).floor().repeat(1, 2) * limits.repeat(2)
        return CutoutPlan(boxes, region, self._coverage(boxes, region))

    def _centres(self, generator: torch.Generator) -> torch.Tensor:
        """(N, 2) centres (y, x): a draw from the region's mask (a cell by its weight, then a point in it); sample
        moves it to the nearest point of the window [lo, hi].

        Moving a draw into the window pushes the box as far towards the mask as the bounds allow, which
        keeps more of the box on the region than drawing from the part of the mask inside the window (for
        two blobs in one region, the latter centres boxes on a blob's edge more often).
        """
        picks = torch.multinomial(self.centre_mass, max(self.counts), replacement=True, generator=generator)
        # Each region's first `count` draws, in the order of self.region.
        keep = torch.arange(picks.shape[1])[None, :] < torch.tensor(self.counts)[:, None]
        cells = picks[keep]
        cell_yx = torch.stack([cells // self.grid_width, cells % self.grid_width], 1).float()
        return (cell_yx + torch.rand(cells.shape[0], 2, generator=generator)) * self.cell

    def _coverage(self, boxes: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """Mean weight of each box's own region inside it, from a fixed grid of bilinear samples."""
        rois = torch.cat([region[:, None].float(), boxes[:, [1, 0, 3, 2]]], 1)
        mean = roi_align(self.coverage_masks, rois, 1, sampling_ratio=COVERAGE_SAMPLES, aligned=True)
        return mean.flatten().clamp(0, 1)


@dataclass
class DrawnCutouts:
    """One step's random choices on the host: [boxes, region, weights] and, with augmentations, [warp, colour,
    strength] (see CutoutPlan and AugmentParams); seed: the augmentation noise's (None without augmentations)."""

    tensors: list[torch.Tensor]
    seed: int | None


@dataclass
class PlannedCutouts:
    """DrawnCutouts' tensors on the image's device, and the noise's seed, or the noise itself already drawn from
    it (a captured step refills a buffer: drawing from a seed inside a CUDA graph would repeat the first draw)."""

    tensors: list[torch.Tensor]
    seed: int | None
    noise: torch.Tensor | None = None


@dataclass
class Cutouts:
    """One step's cutouts of every region. pixels: (N, 3, S, S); region: (N,) long row of the weights each
    belongs to; weights: (N,) mean mask weight inside each box; boxes: (N, 4) (y0, x0, y1, x1) in pixels.
    All on the image's device."""

    pixels: torch.Tensor
    region: torch.Tensor
    weights: torch.Tensor
    boxes: torch.Tensor


class RegionCutouts:
    """Cutouts of size `cut_size` inside each guided region, `total` in all (at least `minimum` per region
    with pixels), as one batch. Call once per step with the step's image and the regions' weights. `wrap`: the
    image is a tileable canvas, whose cutouts may cross its edges (CutoutPlanner)."""

    def __init__(
        self,
        cut_size: int,
        total: int,
        minimum: int,
        cut_pow: float = 1.0,
        augment: bool = True,
        min_fraction: float = 0.25,
        min_pixels: int = 16,
        wrap: bool = False,
    ):
        self.cut_size = cut_size
        self.wrap = wrap
        self.total = total
        self.minimum = minimum
        self.cut_pow = cut_pow
        self.min_fraction = min_fraction
        self.min_pixels = min_pixels
        self.augment = CutoutAugment(wrap=wrap) if augment else None
        self._weights: torch.Tensor | None = None
        self._planner: CutoutPlanner | None = None

    def planner(self, weights: torch.Tensor) -> CutoutPlanner:
        """The planner for these masks, kept while the same tensor is passed: pass one tensor for the whole
        job, as building a planner copies the masks to the host."""
        if self._planner is None or weights is not self._weights:
            self._planner = CutoutPlanner(
                weights, self.total, self.minimum, self.cut_pow, self.min_fraction, self.min_pixels, self.wrap
            )
            self._weights = weights
        return self._planner

    def __call__(self, image: torch.Tensor, guided_weights: torch.Tensor, generator: torch.Generator) -> Cutouts:
        """image (1, 3, H, W); guided_weights (R, 1, H, W); generator: a CPU generator, advanced by the call."""
        drawn = self.draw(guided_weights, generator)
        # One host-to-device copy per step for everything planned on the host.
        return self.cut(image, PlannedCutouts(upload(drawn.tensors, image.device), drawn.seed))

    def draw(self, guided_weights: torch.Tensor, generator: torch.Generator) -> DrawnCutouts:
        """One step's random choices, on the host: the boxes, then the augmentations' parameters."""
        plan = self.planner(guided_weights).sample(generator)
        tensors = [plan.boxes, plan.region, plan.weights]
        if self.augment is None:
            return DrawnCutouts(tensors, None)
        params = self.augment.params(plan.region.shape[0], generator)
        return DrawnCutouts([*tensors, params.warp, params.colour, params.strength], params.seed)

    def cut(self, image: torch.Tensor, planned: PlannedCutouts) -> Cutouts:
        """The cutouts of `image` at a step's drawn choices, already on its device."""
        boxes, region, weights, *rest = planned.tensors
        pixels = make_cutouts(image, boxes, self.cut_size, self.wrap)
        if self.augment is not None:
            warp, colour, strength = rest
            pixels = self.augment.apply(pixels, AugmentParams(warp, colour, strength, planned.seed, planned.noise))
        return Cutouts(pixels=pixels, region=region, weights=weights.to(image.dtype), boxes=boxes)
