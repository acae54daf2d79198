"""Losses of the image itself: smoothness (total variation), saturation and mirror symmetry.

Each works in one region (a guide, weighted by the region's mask) or over everything generated (the spec's top-level
`losses` shorthand, `global/<kind>`, weighted by how much of each pixel is generated).
"""

from __future__ import annotations

import torch

from ..filters import masked_mean
from ..placement import BuildContext, Placement
from .base import GuideTerm, StepContext

Bounds = tuple[int, int, int, int]  # y0, y1, x0, x1


class AreaTerm(GuideTerm):
    """A term weighted by one region's mask (`region_row`), or by the generated area when it is None."""

    def __init__(self, key: str, weight: float, region_row: int | None = None):
        super().__init__(key, weight)
        self.region_row = region_row

    def area(self, ctx: StepContext) -> torch.Tensor:
        """(1, 1, H, W) weights of the pixels this term looks at."""
        if self.region_row is None:
            return ctx.layout.free
        return ctx.layout.guided[self.region_row : self.region_row + 1]


class TotalVariationTerm(AreaTerm):
    """Smoothness: squared differences between neighbouring pixels (on a tileable canvas, also between the last
    column and the first, and the last row and the first)."""

    kind = "tv"
    min_scale = 1e-5

    def raw(self, ctx: StepContext) -> torch.Tensor:
        image, area = ctx.image, self.area(ctx)
        if ctx.tileable:
            dx = (image - image.roll(1, -1)).pow(2)
            dy = (image - image.roll(1, -2)).pow(2)
            return masked_mean(dx, area) + masked_mean(dy, area)
        dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2)
        dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2)
        return masked_mean(dx, area[..., :, 1:]) + masked_mean(dy, area[..., 1:, :])


class SaturationTerm(AreaTerm):
    """Colourfulness: a positive weight raises saturation, a negative weight lowers it."""

    kind = "saturation"
    min_scale = 1e-3

    def raw(self, ctx: StepContext) -> torch.Tensor:
        high = ctx.image.amax(1, keepdim=True)
        low = ctx.image.amin(1, keepdim=True)
        saturation = (high - low) / (high + 1e-3)
        return masked_mean((1.0 - saturation).pow(2), self.area(ctx))


class SymmetryTerm(AreaTerm):
    """Mirror symmetry: `vertical` mirrors left and right, `horizontal` top and bottom, about the middle of
    `bounds` (a region's own box), or of the whole canvas when there are none."""

    kind = "symmetry"
    min_scale = 1e-4

    def __init__(
        self,
        key: str,
        weight: float,
        region_row: int | None = None,
        axis: str = "vertical",
        bounds: Bounds | None = None,
    ):
        super().__init__(key, weight, region_row)
        self.dim = -1 if axis == "vertical" else -2
        self.bounds = bounds

    def raw(self, ctx: StepContext) -> torch.Tensor:
        image, area = ctx.image, self.area(ctx)
        if self.bounds is not None:
            y0, y1, x0, x1 = self.bounds
            image, area = image[..., y0:y1, x0:x1], area[..., y0:y1, x0:x1]
        mirrored = image.flip(self.dim)
        return masked_mean((image - mirrored).pow(2), area * area.flip(self.dim))


def region_bounds(weights: torch.Tensor) -> Bounds:
    """The box around a region's non-zero weights, (1, 1, H, W) -> (y0, y1, x0, x1)."""
    inside = weights[0, 0] > 0
    rows = torch.nonzero(inside.any(1)).flatten()
    cols = torch.nonzero(inside.any(0)).flatten()
    if rows.numel() == 0:
        return 0, weights.shape[-2], 0, weights.shape[-1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def build_tv(guide, place: Placement, ctx: BuildContext) -> TotalVariationTerm:
    return TotalVariationTerm(place.key, guide.weight, place.row)


def build_saturation(guide, place: Placement, ctx: BuildContext) -> SaturationTerm:
    return SaturationTerm(place.key, guide.weight, place.row)


def build_symmetry(guide, place: Placement, ctx: BuildContext) -> SymmetryTerm:
    bounds = region_bounds(ctx.layout.guided[place.row : place.row + 1])
    return SymmetryTerm(place.key, guide.weight, place.row, guide.axis, bounds)
