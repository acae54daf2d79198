"""CLIP cutouts' pixels: square crops of the image at planned boxes, each resized to CLIP's input size, in one batch.

Crops are one batched roi_align (average) and roi_pool (max), averaged as pixray does: the max keeps thin bright
detail that pure averaging washes out when shrinking. On the CPU the average is roi_align's computed as two matrix
products per box (a custom autograd Function), several times faster there. `upload` moves a step's small host
tensors (boxes, regions, augmentation parameters) to the device in one copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import roi_align, roi_pool

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


_cpu_average = _SeparableRoiAverage.apply


def run_cpu_crops_eagerly() -> None:
    """For torch.compile (engine/step_capture.py): the CPU crops read the boxes on the host, so traced they would
    specialise on every step's boxes and recompile each step; untraced, they run eagerly between compiled graphs."""
    global _cpu_average
    _cpu_average = torch.compiler.disable(_SeparableRoiAverage.apply)


def make_cutouts(image: torch.Tensor, boxes: torch.Tensor, size: int, wrap: bool = False) -> torch.Tensor:
    """(N, 3, size, size) crops of a (1, 3, H, W) image at boxes (N, 4) (y0, x0, y1, x1), ends exclusive,
    each resized by (average + max pooling) / 2; one batched op, differentiable w.r.t. the image. `wrap`: the
    image is a torus (a tileable canvas), and a box may run past its bottom or right edge, by at most the image's
    size, into its top or left."""
    if image.shape[0] != 1:
        raise ValueError(f"make_cutouts takes one image, got a batch of {image.shape[0]}")
    if wrap:
        image = image.repeat(1, 1, 2, 2)
    boxes = boxes.to(device=image.device, dtype=image.dtype)
    index = torch.zeros_like(boxes[:, :1])
    xyxy = boxes[:, [1, 0, 3, 2]]
    # aligned=True: pixel i spans [i, i + 1), as the boxes do; the adaptive sampling ratio averages
    # every pixel of a bin when shrinking. On the CPU the same average comes from matrix products.
    if image.device.type == "cpu":
        average = _cpu_average(image, boxes, size)
    else:
        average = roi_align(image, torch.cat([index, xyxy], 1), size, aligned=True)
    # roi_pool rounds corners to pixels and counts its end as inclusive.
    maximum = roi_pool(image, torch.cat([index, xyxy[:, :2], xyxy[:, 2:] - 1], 1), size)
    return (average + maximum) / 2


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
