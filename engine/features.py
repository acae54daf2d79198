"""Fixed-seed random-filter CNN features, and masked Gram statistics on them.

Random, untrained conv filters capture texture and style well through Gram statistics
(Ustyuzhaninov et al. 2016; He, Wang & Hopcroft 2016). The seed is fixed so that every run,
machine and storyboard shot sees the same features. The network runs once per step on the
whole image; each region's statistics come from its mask in feature space (Gatys et al.
2016, spatial control), so K regions cost one forward pass plus K cheap matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_SEED = 20161107
DEFAULT_WIDTHS = (32, 64, 128, 128)
JITTER_UNIT = 2 ** (len(DEFAULT_WIDTHS) - 1)  # shifts in multiples of the coarsest stride undo exactly

# A jitter: (dy, dx) pixels on the host, or the same as a (2,) long tensor on the image's device, which a captured
# step (engine/step_capture.py) reads from a buffer refilled every step, so one graph serves every shift.
Shift = tuple[int, int] | torch.Tensor


class RandomFeatureNet(nn.Module):
    """A small VGG-like stack with frozen random weights; returns one map per scale."""

    def __init__(self, widths: tuple[int, ...] = DEFAULT_WIDTHS, seed: int = FEATURE_SEED):
        super().__init__()
        rng = torch.Generator().manual_seed(seed)
        layers = []
        channels = 3
        for width in widths:
            conv = nn.Conv2d(channels, width, kernel_size=3, padding=1, padding_mode="reflect")
            with torch.no_grad():
                weight = torch.randn(conv.weight.shape, generator=rng)
                # Zero-mean filters respond to structure rather than brightness; He scaling
                # keeps activations in range through the stack.
                weight -= weight.mean(dim=(1, 2, 3), keepdim=True)
                weight *= (2.0 / (channels * 9)) ** 0.5
                conv.weight.copy_(weight)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=rng) * 0.01)
            layers.append(conv)
            channels = width
        self.convs = nn.ModuleList(layers)
        self.requires_grad_(False)

    @property
    def strides(self) -> list[int]:
        """Pixels per feature cell of each returned map: raw colours, then each conv."""
        return [1] + [2**i for i in range(len(self.convs))]

    def forward(self, image: torch.Tensor, circular: bool = False) -> list[torch.Tensor]:
        """[pixels, conv1, conv2, ...]: the raw colours carry palette and brightness, which the
        zero-mean filters are blind to by design. `circular`: the image is a torus (a tileable
        canvas), so the filters read across its edges rather than a mirror of them."""
        # channels_last: faster convolutions, and each map's pixels are rows of (P, C) for free.
        image = image.contiguous(memory_format=torch.channels_last)
        x = (image - 0.5) / 0.25
        features = [image]
        for index, conv in enumerate(self.convs):
            if index:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            x = F.relu(_wrapped_conv(conv, x) if circular else conv(x))
            features.append(x)
        return features


def _wrapped_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv` with circular padding in place of its own (the net is shared, so its modules stay as they are)."""
    pad_y, pad_x = conv.padding
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="circular")
    return F.conv2d(padded, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def masks_for(feature: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Region masks (R, 1, H, W) averaged down to a feature map's size -> (R, P)."""
    h, w = feature.shape[-2:]
    small = F.adaptive_avg_pool2d(masks, (h, w))
    return small.flatten(1)


def masked_stats(feature: torch.Tensor, weights: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean (R, C) and Gram (R, C, C) of a (1, C, H, W) map under (R, P) weights.

    One batched product for all regions: the cost grows with R far slower than R passes.
    """
    flat = feature.flatten(2)[0]  # (C, P)
    total = weights.sum(1).clamp_min(eps)  # (R,)
    mean = (weights @ flat.t()) / total[:, None]
    weighted = flat.unsqueeze(0) * weights.unsqueeze(1)  # (R, C, P)
    gram = weighted @ flat.t() / total[:, None, None]
    return mean, gram


def image_stats(features: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Unmasked (mean, Gram) per layer for a reference image, each with a leading R=1 axis."""
    stats = []
    for feature in features:
        ones = torch.ones(1, feature.shape[-2] * feature.shape[-1], device=feature.device, dtype=feature.dtype)
        stats.append(masked_stats(feature, ones))
    return stats


def style_distance(
    stats: list[tuple[torch.Tensor, torch.Tensor]],
    target: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """Per-layer relative Gram + mean distance, summed over layers -> (R,).

    Each layer is divided by its target's own energy (He et al.'s per-layer normalisation) so
    that no layer dominates whatever the scale of its activations.
    """
    total = None
    for (mean, gram), (t_mean, t_gram) in zip(stats, target, strict=True):
        gram_term = (gram - t_gram).pow(2).sum((1, 2)) / t_gram.pow(2).sum((1, 2)).clamp_min(1e-12)
        mean_term = (mean - t_mean).pow(2).sum(1) / t_mean.pow(2).sum(1).clamp_min(1e-12)
        layer = gram_term + mean_term
        total = layer if total is None else total + layer
    assert total is not None
    return total / len(stats)


def rolled(tensor: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torch.roll over the last two dims by a (2,) long tensor: the same bytes (a gather copies, it does not
    round), without the shift ever reaching the host."""
    out = tensor
    for dim, amount in ((-2, shift[0]), (-1, shift[1])):
        size = tensor.shape[dim]
        out = out.index_select(dim, (torch.arange(size, device=tensor.device) - amount) % size)
    return out


def jittered_features(
    net: RandomFeatureNet, image: torch.Tensor, shift: Shift, circular: bool = False
) -> list[torch.Tensor]:
    """Features of the image shifted circularly by `shift` pixels (`circular`: of a tileable canvas).

    The net sees a different alignment of its pooling grid every step, so the optimiser cannot fit
    that grid with high-frequency patterns (Lucid's transformation robustness). The maps stay in
    the shifted frame: the masks follow them instead (see RegionSupport.stats and shifted), which
    costs index arithmetic rather than copies of every feature map. Shifts are multiples of
    JITTER_UNIT so that they divide every stride.
    """
    if isinstance(shift, torch.Tensor):
        return net(rolled(image, shift), circular)
    return net(torch.roll(image, shift, dims=(-2, -1)) if shift != (0, 0) else image, circular)


def shifted(tensor: torch.Tensor, shift: Shift, stride: int) -> torch.Tensor:
    """A map in the unshifted frame, moved into the frame of jittered features at this stride."""
    if isinstance(shift, torch.Tensor):
        return rolled(tensor, shift // stride)
    if shift == (0, 0):
        return tensor
    return torch.roll(tensor, (shift[0] // stride, shift[1] // stride), dims=(-2, -1))


class RowGram(torch.autograd.Function):
    """Xᵀ X for rows X (K, C), with a one-product backward X (G + Gᵀ) where autograd runs two."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        return rows.t() @ rows

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (rows,) = ctx.saved_tensors
        return rows @ (grad + grad.t())


def pixel_rows(feature: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H*W, C): one row per pixel; a view when the map is channels_last."""
    return feature[0].permute(1, 2, 0).reshape(-1, feature.shape[1])


class RegionSupport:
    """Where each region has weight, per feature map: found once per job, used every step.

    A region's statistics then cost in proportion to its own area, so K regions that tile the
    canvas cost about as much as one region covering it, not K times as much. All regions'
    pixels are gathered in one index_select per map (one scatter in the backward pass).
    """

    def __init__(
        self, masks: torch.Tensor, shapes: list[tuple[int, int]], strides: list[int], dense: bool | None = None
    ):
        # On a GPU a step of this size is bound by kernel launches, not arithmetic: there one
        # batched product over the dense masks beats a few small products per region.
        self.dense = masks.device.type != "cpu" if dense is None else dense
        self.layers: list[_LayerSupport] = []
        self.pooled: list[torch.Tensor] = []
        for shape, stride in zip(shapes, strides, strict=True):
            self.pooled.append(F.adaptive_avg_pool2d(masks, shape))  # (S, 1, h, w)
            weights = self.pooled[-1].flatten(1)  # (S, P)
            totals = weights.sum(1).clamp_min(1e-8)
            if weights.shape[0] == 1 and bool((weights == 1).all()):
                # One region covering everything at weight 1: statistics do not depend on pixel
                # order, so it needs no gather, no weighting and no jitter bookkeeping.
                self.layers.append(_LayerSupport(None, weights[0], [weights.shape[1]], totals, shape, stride))
                continue
            # Per region: its pixels at full weight, then its partial (feathered) ones. Only the
            # partial ones need weighting, so most of a region costs a gather and a product.
            indices, roots, sizes = [], [], []
            for row in weights:
                full = torch.nonzero(row == 1).flatten()
                partial = torch.nonzero((row > 0) & (row < 1)).flatten()
                indices += [full, partial]
                roots.append(row[partial].sqrt())
                sizes += [len(full), len(partial)]
            self.layers.append(_LayerSupport(torch.cat(indices), torch.cat(roots), sizes, totals, shape, stride))

    def stats(self, layer: int, feature: torch.Tensor, shift: Shift = (0, 0)) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (S, C), Gram (S, C, C)) of a (1, C, H, W) map, jittered by `shift`, per region."""
        support = self.layers[layer]
        if self.dense and support.index is not None:
            weights = shifted(self.pooled[layer], shift, support.stride).flatten(1)
            return masked_stats(feature, weights)
        rows = pixel_rows(feature)  # (P, C)
        if support.index is None:
            return rows.mean(0)[None], (RowGram.apply(rows) / support.totals[0])[None]
        chunks = rows.index_select(0, support.shifted_index(shift)).split(support.sizes)
        roots = support.roots.split(support.sizes[1::2])
        means, grams = [], []
        for region, total in enumerate(support.totals):
            full, partial = chunks[2 * region], chunks[2 * region + 1] * roots[region][:, None]
            means.append((full.sum(0) + roots[region] @ partial) / total)
            grams.append((RowGram.apply(full) + RowGram.apply(partial)) / total)
        return torch.stack(means), torch.stack(grams)


class _LayerSupport:
    """All regions' pixels at one feature scale, concatenated: one gather (and one scatter) a step.

    `sizes` alternates per region: pixels at full weight, then partial ones; `roots` holds the
    square roots of the partial weights only.
    """

    def __init__(self, index, roots, sizes, totals, shape, stride):
        self.index, self.roots, self.sizes, self.totals = index, roots, sizes, totals
        self.height, self.width = shape
        self.stride = stride
        if index is not None:
            self.ys, self.xs = index // self.width, index % self.width

    def shifted_index(self, shift: Shift) -> torch.Tensor:
        if isinstance(shift, torch.Tensor):
            dy, dx = shift // self.stride
        elif shift == (0, 0):
            return self.index
        else:
            dy, dx = shift[0] // self.stride, shift[1] // self.stride
        return ((self.ys + dy) % self.height) * self.width + (self.xs + dx) % self.width
