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

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """[pixels, conv1, conv2, ...]: the raw colours carry palette and brightness, which the
        zero-mean filters are blind to by design."""
        x = (image - 0.5) / 0.25
        features = [image]
        for index, conv in enumerate(self.convs):
            if index:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            x = F.relu(conv(x))
            features.append(x)
        return features


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
