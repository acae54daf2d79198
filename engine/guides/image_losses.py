"""Global losses over the generated area: total variation, saturation and symmetry."""

from __future__ import annotations

import torch

from ..filters import masked_mean
from .base import GuideTerm, StepContext


class TotalVariationTerm(GuideTerm):
    """Smoothness: squared differences between neighbouring pixels."""

    kind = "tv"
    min_scale = 1e-5

    def raw(self, ctx: StepContext) -> torch.Tensor:
        image, free = ctx.image, ctx.layout.free
        dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2)
        dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2)
        return masked_mean(dx, free[..., :, 1:]) + masked_mean(dy, free[..., 1:, :])


class SaturationTerm(GuideTerm):
    """Colourfulness: a positive weight raises saturation, a negative weight lowers it."""

    kind = "saturation"
    min_scale = 1e-3

    def raw(self, ctx: StepContext) -> torch.Tensor:
        high = ctx.image.amax(1, keepdim=True)
        low = ctx.image.amin(1, keepdim=True)
        saturation = (high - low) / (high + 1e-3)
        return masked_mean((1.0 - saturation).pow(2), ctx.layout.free)


class SymmetryTerm(GuideTerm):
    """Left-right mirror symmetry."""

    kind = "symmetry"
    min_scale = 1e-4

    def raw(self, ctx: StepContext) -> torch.Tensor:
        mirrored = ctx.image.flip(-1)
        weight = ctx.layout.free * ctx.layout.free.flip(-1)
        return masked_mean((ctx.image - mirrored).pow(2), weight)
