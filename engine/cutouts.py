"""Square cutouts per region for CLIP, all regions' cutouts in one batch.

CLIP guidance (VQGAN-CLIP, pixray) scores many random square crops of the image, resized to CLIP's input
size and augmented, rather than the whole image once. Here every guided region gets its own crops, placed
inside the region's bounding box with centres drawn from its mask, and its share of the budget follows its
area. All regions' crops come out as one (N, 3, S, S) batch, so one CLIP forward serves every region.

Boxes are planned on the CPU from a `torch.Generator`, so a job is deterministic whatever the device; the
region statistics the plan needs are copied to the host once per mask tensor, and each step only moves a
few small tensors to the device. Crops are one batched roi_align (average) and roi_pool (max), averaged
as pixray does: the max keeps thin bright detail that pure averaging washes out when shrinking. On the CPU the
average is roi_align's computed as two matrix products per box, several times faster there. The
augmentations (perspective, affine, colour, noise) give each cutout its own parameters in one batched pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_perspective_transform
from torchvision.ops import roi_align, roi_pool

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
    """

    def __init__(
        self,
        weights: torch.Tensor,
        total: int,
        minimum: int,
        cut_pow: float = 1.0,
        min_fraction: float = 0.25,
        min_pixels: int = 16,
    ):
        masks = weights.detach().float().cpu()  # the one host copy of the masks
        self.masks = masks
        self.cut_pow = cut_pow
        height, width = masks.shape[-2:]
        self.image_size = (height, width)
        self.bounds = region_bounds(masks)
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
        centre = self._centres(lo, hi, generator)
        # Keep a box longer than the bounds inside the image; the image's shorter side is at least max_size.
        limits = torch.tensor(self.image_size, dtype=torch.float32)
        centre = torch.minimum(torch.maximum(centre, size / 2), limits - size / 2)
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
        return CutoutPlan(boxes, region, self._coverage(boxes, region))

    def _centres(self, lo: torch.Tensor, hi: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 2) centres (y, x): a draw from the region's mask (a cell by its weight, then a point in it),
        moved to the nearest point of the window [lo, hi].

        Moving a draw into the window pushes the box as far towards the mask as the bounds allow, which
        keeps more of the box on the region than drawing from the part of the mask inside the window (for
        two blobs in one region, the latter centres boxes on a blob's edge more often).
        """
        picks = torch.multinomial(self.centre_mass, max(self.counts), replacement=True, generator=generator)
        # Each region's first `count` draws, in the order of self.region.
        keep = torch.arange(picks.shape[1])[None, :] < torch.tensor(self.counts)[:, None]
        cells = picks[keep]
        cell_yx = torch.stack([cells // self.grid_width, cells % self.grid_width], 1).float()
        centre = (cell_yx + torch.rand(cells.shape[0], 2, generator=generator)) * self.cell
        return torch.minimum(torch.maximum(centre, lo), hi)

    def _coverage(self, boxes: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """Mean weight of each box's own region inside it, from a fixed grid of bilinear samples."""
        rois = torch.cat([region[:, None].float(), boxes[:, [1, 0, 3, 2]]], 1)
        mean = roi_align(self.masks, rois, 1, sampling_ratio=COVERAGE_SAMPLES, aligned=True)
        return mean.flatten().clamp(0, 1)


AxisSamples = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _axis_samples(start: torch.Tensor, end: torch.Tensor, extent: int, size: int) -> AxisSamples:
    """Along one axis, the pixels that roi_align(aligned=True, sampling_ratio=0) reads for each of the `size`
    output cells of boxes [start, end), and their weights, with torchvision's kernel's arithmetic: each cell
    averages ceil(cell length) evenly spaced bilinear samples; samples over a pixel beyond the image count zero,
    those in the outer half pixels read the edge pixel. (low, high, low weight, high weight), each (N, size, G);
    samples past a box's own count have weight zero."""
    dtype = start.dtype
    start, end = (start - 0.5)[:, None, None], (end - 0.5)[:, None, None]  # pixel centres at integers
    bin_size = (end - start) / size
    grid = torch.ceil(bin_size)  # samples per cell
    samples = max(int(grid.max()), 1) if grid.numel() else 1
    cell = torch.arange(size, dtype=dtype)[None, :, None]
    k = torch.arange(samples, dtype=dtype)[None, None, :]
    pos = start + cell * bin_size + (k + 0.5) * bin_size / grid.clamp_min(1)
    weight = ((k < grid) & (pos >= -1) & (pos <= extent)).to(dtype) / grid.clamp_min(1)
    pos = pos.clamp_min(0)
    low = pos.floor().clamp_max(extent - 1)
    frac = torch.where(low >= extent - 1, torch.zeros_like(pos), pos - low)
    high = (low + 1).clamp_max(extent - 1)
    return low.long(), high.long(), weight * (1 - frac), weight * frac


def _window_weights(samples: AxisSamples, n: int, begin: int, stop: int) -> torch.Tensor:
    """(size, stop - begin): box n's weights over the pixels [begin, stop) of its window. Every sample with
    weight lies inside the window; the clamp only keeps the weightless ones' indices in range."""
    low, high, low_weight, high_weight = (t[n] for t in samples)
    weights = low_weight.new_zeros(low.shape[0], stop - begin)
    weights.scatter_add_(1, (low - begin).clamp_(0, stop - begin - 1), low_weight)
    weights.scatter_add_(1, (high - begin).clamp_(0, stop - begin - 1), high_weight)
    return weights


class _SeparableRoiAverage(torch.autograd.Function):
    """roi_align(aligned=True) of one image on the CPU, as two matrix products per box.

    Its cells average bilinear samples on a grid, so a crop is separable: rows (S, h) @ window @ cols (S, w)^T,
    each matrix holding one axis's sample weights over the box's window. torchvision's CPU kernels run on one
    thread and its backward scatters every sample of every cell: 0.4-0.7 s for 32 crops of 224 from 512x512 on
    two cores, more than a tenth of a ViT-B/32 step. Two products per box are 50-90 ms either way and use every
    core. Only the samples are kept for the backward, not the matrices (S x the box's side each), which are
    rebuilt one box at a time. The values are roi_align's to float rounding (tests/test_cutouts.py).
    """

    @staticmethod
    def forward(ctx, image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
        height, width = image.shape[-2:]
        rows = _axis_samples(boxes[:, 0], boxes[:, 2], height, size)
        cols = _axis_samples(boxes[:, 1], boxes[:, 3], width, size)
        # Each box's window: its pixels and the neighbours its edge samples read.
        windows = [
            (
                max(math.floor(y0) - 1, 0),
                min(math.ceil(y1) + 1, height),
                max(math.floor(x0) - 1, 0),
                min(math.ceil(x1) + 1, width),
            )
            for y0, x0, y1, x1 in boxes.tolist()
        ]
        ctx.save_for_backward(*rows, *cols)
        ctx.windows, ctx.image_shape = windows, image.shape
        crops = image.new_zeros(len(windows), image.shape[1], size, size)
        for n, (y0, y1, x0, x1) in enumerate(windows):
            if y1 > y0 and x1 > x0:  # a box wholly outside the image reads nothing
                window = image[0, :, y0:y1, x0:x1]
                crops[n] = _window_weights(rows, n, y0, y1) @ window @ _window_weights(cols, n, x0, x1).T
        return crops

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        saved = ctx.saved_tensors
        rows, cols = saved[:4], saved[4:]
        grad_image = grad.new_zeros(ctx.image_shape)
        for n, (y0, y1, x0, x1) in enumerate(ctx.windows):
            if y1 > y0 and x1 > x0:
                rows_n, cols_n = _window_weights(rows, n, y0, y1), _window_weights(cols, n, x0, x1)
                grad_image[0, :, y0:y1, x0:x1] += rows_n.T @ grad[n] @ cols_n
        return grad_image, None, None


def make_cutouts(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size) crops of a (1, 3, H, W) image at boxes (N, 4) (y0, x0, y1, x1), ends exclusive,
    each resized by (average + max pooling) / 2; one batched op, differentiable w.r.t. the image."""
    if image.shape[0] != 1:
        raise ValueError(f"make_cutouts takes one image, got a batch of {image.shape[0]}")
    boxes = boxes.to(device=image.device, dtype=image.dtype)
    index = torch.zeros_like(boxes[:, :1])
    xyxy = boxes[:, [1, 0, 3, 2]]
    # aligned=True: pixel i spans [i, i + 1), as the boxes do; the adaptive sampling ratio averages
    # every pixel of a bin when shrinking. On the CPU the same average comes from matrix products.
    if image.device.type == "cpu":
        average = _SeparableRoiAverage.apply(image, boxes, size)
    else:
        average = roi_align(image, torch.cat([index, xyxy], 1), size, aligned=True)
    # roi_pool rounds corners to pixels and counts its end as inclusive.
    maximum = roi_pool(image, torch.cat([index, xyxy[:, :2], xyxy[:, 2:] - 1], 1), size)
    return (average + maximum) / 2


LUMA = (0.299, 0.587, 0.114)


def upload(tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Small host tensors to the device in one copy, each keeping its shape and dtype (integers must fit
    float32 exactly). The copy is from pinned memory, so it does not wait for the device: from pageable
    memory CUDA may drain the stream first."""
    if device.type == "cpu":
        return list(tensors)
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    if device.type == "cuda":
        flat = flat.pin_memory()
    parts = flat.to(device, non_blocking=True).split([t.numel() for t in tensors])
    return [part.view(t.shape).to(t.dtype) for part, t in zip(parts, tensors, strict=True)]


@dataclass
class AugmentParams:
    """Per-cutout augmentation parameters. warp: (N, 3, 3) where each output point samples the input, in
    grid_sample coordinates; colour: (N, 3, 3) colour matrix; strength: (N, 1, 1, 1) noise scale; seed: the
    noise's."""

    warp: torch.Tensor
    colour: torch.Tensor
    strength: torch.Tensor
    seed: int


class CutoutAugment:
    """pixray's cutout augmentations, each cutout with its own random parameters, in one batched pass:
    perspective, affine (rotation, translation, scale), hue and saturation, then noise of a random strength.

    Why not kornia.augmentation: its colour jitter goes through HSV (0.9 s for 32 cutouts of 224 px on two
    CPU cores, against milliseconds for the colour matrix here), each geometric layer warps the batch again,
    it inverts matrices on the device (a host sync on CUDA), and it draws from torch's global RNG. Here the
    parameters come from the step's generator on the CPU, perspective and affine compose into one homography
    per cutout (kornia solves it) applied by one grid_sample, and hue and saturation into one 3x3 colour
    matrix per cutout.
    """

    def __init__(
        self,
        perspective: float = 0.3,
        degrees: float = 15.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
        hue: float = 0.1,
        saturation: float = 0.1,
        noise: float = 0.1,
        p_perspective: float = 0.7,
        p_affine: float = 0.8,
        p_colour: float = 0.7,
    ):
        self.perspective, self.p_perspective = perspective, p_perspective
        self.degrees, self.translate, self.scale, self.p_affine = degrees, translate, scale, p_affine
        self.hue, self.saturation, self.p_colour = hue, saturation, p_colour
        self.noise = noise
        self._grids: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def __call__(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 3, S, S); the generator (CPU) is advanced by the call."""
        params = self.params(pixels.shape[0], generator)
        warp, colour, strength = upload([params.warp, params.colour, params.strength], pixels.device)
        return self.apply(pixels, AugmentParams(warp, colour, strength, params.seed))

    def params(self, n: int, generator: torch.Generator) -> AugmentParams:
        """Every cutout's random parameters, on the CPU."""
        warp = self._warps(n, generator)
        colour = self._colours(n, generator)
        strength = torch.rand(n, 1, 1, 1, generator=generator) * self.noise
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return AugmentParams(warp, colour, strength, seed)

    def apply(self, pixels: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Augment (N, 3, S, S) pixels with parameters already on their device."""
        if pixels.shape[0] == 0:
            return pixels
        device, dtype = pixels.device, pixels.dtype
        warp, colour, strength = (t.to(dtype) for t in (params.warp, params.colour, params.strength))
        points = self._grid(pixels.shape[-1], device, dtype) @ warp.transpose(1, 2)[:, None]  # (N, S, S, 3)
        grid = points[..., :2] / points[..., 2:]
        pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        pixels = torch.einsum("nij,njhw->nihw", colour, pixels)
        # The noise is drawn on the device: drawing it on the host and copying would cost more than the rest.
        noise_rng = torch.Generator(device=device).manual_seed(params.seed)
        return pixels + strength * torch.randn(pixels.shape, generator=noise_rng, device=device, dtype=dtype)

    def _grid(self, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(S, S, 3) homogeneous (x, y, 1) of the pixel centres in grid_sample's [-1, 1] coordinates."""
        key = (size, device, dtype)
        if key not in self._grids:
            line = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
            y, x = torch.meshgrid(line, line, indexing="ij")
            self._grids[key] = torch.stack([x, y, torch.ones_like(x)], -1).to(device, dtype)
        return self._grids[key]

    def _warps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, 3) per cutout: where each output point samples the input, perspective then affine undone."""

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, dtype=torch.float64)

        # Perspective as kornia's RandomPerspective: every corner moves inwards by up to `perspective` of
        # the half-size (1 in these coordinates).
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
        on = (rand(n, 1, 1) < self.p_perspective).double()
        moved = corners - corners * rand(n, 4, 2) * self.perspective * on
        homography = get_perspective_transform(corners.expand(n, 4, 2).contiguous(), moved)

        on = (rand(n) < self.p_affine).double()
        angle = (rand(n) * 2 - 1) * math.radians(self.degrees) * on
        low, high = self.scale
        zoom = 1 + (low + (high - low) * rand(n) - 1) * on
        shift = (rand(n, 2) * 2 - 1) * 2 * self.translate * on[:, None]  # the image is 2 units wide
        affine = torch.zeros(n, 3, 3, dtype=torch.float64)
        affine[:, 0, 0] = affine[:, 1, 1] = zoom * angle.cos()
        affine[:, 0, 1] = -zoom * angle.sin()
        affine[:, 1, 0] = zoom * angle.sin()
        affine[:, :2, 2] = shift
        affine[:, 2, 2] = 1
        # Inverted on the host: on a GPU, an inverse checks for singular matrices and waits for the device.
        return torch.linalg.inv(affine @ homography).float()

    def _colours(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, 3) per cutout: a hue turn about the grey axis, then saturation towards luma."""
        on = (torch.rand(n, generator=generator) < self.p_colour).float()
        turn = (torch.rand(n, generator=generator) * 2 - 1) * self.hue * 2 * math.pi * on
        sat = 1 + (torch.rand(n, generator=generator) * 2 - 1) * self.saturation * on
        axis = torch.full((3,), 3**-0.5)
        cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) * 3**-0.5
        eye = torch.eye(3)
        cos, sin = turn.cos()[:, None, None], turn.sin()[:, None, None]
        rotate = cos * eye + sin * cross + (1 - cos) * torch.outer(axis, axis)  # Rodrigues
        towards_grey = torch.ones(3, 1) * torch.tensor(LUMA)[None, :]  # every channel <- luma
        saturate = sat[:, None, None] * eye + (1 - sat[:, None, None]) * towards_grey
        return saturate @ rotate


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
    with pixels), as one batch. Call once per step with the step's image and the regions' weights."""

    def __init__(
        self,
        cut_size: int,
        total: int,
        minimum: int,
        cut_pow: float = 1.0,
        augment: bool = True,
        min_fraction: float = 0.25,
        min_pixels: int = 16,
    ):
        self.cut_size = cut_size
        self.total = total
        self.minimum = minimum
        self.cut_pow = cut_pow
        self.min_fraction = min_fraction
        self.min_pixels = min_pixels
        self.augment = CutoutAugment() if augment else None
        self._weights: torch.Tensor | None = None
        self._planner: CutoutPlanner | None = None

    def planner(self, weights: torch.Tensor) -> CutoutPlanner:
        """The planner for these masks, kept while the same tensor is passed: pass one tensor for the whole
        job, as building a planner copies the masks to the host."""
        if self._planner is None or weights is not self._weights:
            self._planner = CutoutPlanner(
                weights, self.total, self.minimum, self.cut_pow, self.min_fraction, self.min_pixels
            )
            self._weights = weights
        return self._planner

    def __call__(self, image: torch.Tensor, guided_weights: torch.Tensor, generator: torch.Generator) -> Cutouts:
        """image (1, 3, H, W); guided_weights (R, 1, H, W); generator: a CPU generator, advanced by the call."""
        plan = self.planner(guided_weights).sample(generator)
        params = self.augment.params(plan.region.shape[0], generator) if self.augment is not None else None
        # One host-to-device copy per step for everything planned on the host.
        small = [plan.boxes, plan.region, plan.weights]
        if params is not None:
            small += [params.warp, params.colour, params.strength]
        boxes, region, weights, *rest = upload(small, image.device)
        pixels = make_cutouts(image, boxes, self.cut_size)
        if self.augment is not None and params is not None:  # both or neither; the check is for the type checker
            pixels = self.augment.apply(pixels, AugmentParams(*rest, params.seed))
        return Cutouts(pixels=pixels, region=region, weights=weights.to(image.dtype), boxes=boxes)
