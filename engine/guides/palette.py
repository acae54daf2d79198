"""Palette: every pixel of the region is pulled towards its nearest palette colour."""

from __future__ import annotations

import torch

from ..filters import masked_mean
from ..placement import BuildContext, Placement
from .base import RegionTerm, StepContext

SOFTMIN_TEMPERATURE = 0.002  # in squared RGB distance; small = nearest colour, smooth gradient


def hex_to_rgb(colors: list[str]) -> torch.Tensor:
    return torch.tensor([[int(c[i : i + 2], 16) / 255.0 for i in (1, 3, 5)] for c in colors])


def palette_distance(image: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) x (K, 3) -> (1, 1, H, W) soft-min squared distance to the palette."""
    distances = (image.unsqueeze(1) - palette.view(1, -1, 3, 1, 1)).pow(2).sum(2)  # (1, K, H, W)
    soft = -SOFTMIN_TEMPERATURE * torch.logsumexp(-distances / SOFTMIN_TEMPERATURE, dim=1, keepdim=True)
    return soft.clamp_min(0.0)


class PaletteTerm(RegionTerm):
    kind = "palette"
    min_scale = 1e-4

    def __init__(self, key: str, weight: float, region_row: int, palette: torch.Tensor):
        super().__init__(key, weight, region_row)
        self.palette = palette

    def raw(self, ctx: StepContext) -> torch.Tensor:
        weight = self.region_weight(ctx)
        return masked_mean(palette_distance(ctx.image, self.palette), weight)


def build_palette(guide, place: Placement, ctx: BuildContext) -> PaletteTerm:
    return PaletteTerm(place.key, guide.weight, place.row, hex_to_rgb(guide.colors).to(ctx.device))
