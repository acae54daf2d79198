"""Embolden: the region keeps its structure while contrast, saturation and detail are raised.

The target is the init image enhanced once (detail, local contrast, saturation). The change
itself is bounded in the composite (see bounded_change), so embolden never repaints a region.
"""

from __future__ import annotations

import torch

from ..filters import gaussian_blur, luminance, masked_mean
from .base import RegionTerm, StepContext

MAX_CHANGE_PER_STRENGTH = 0.12


def max_change(strength: float) -> float:
    return min(0.5, MAX_CHANGE_PER_STRENGTH * max(strength, 0.0))


def emboldened(init: torch.Tensor, strength: float, circular: bool = False) -> torch.Tensor:
    """Detail, local contrast and saturation of `init`, each raised in proportion to strength (`circular`: blurred
    across the edges of a tileable canvas)."""
    height, width = init.shape[-2:]
    detail = init - gaussian_blur(init, 1.0, circular)
    local = init - gaussian_blur(init, max(2.0, min(height, width) / 32.0), circular)
    boosted = init + 0.8 * strength * detail + 0.5 * strength * local
    gray = luminance(boosted)
    boosted = gray + (1.0 + 0.5 * strength) * (boosted - gray)
    return boosted.clamp(0.0, 1.0)


def bounded_change(generated: torch.Tensor, init: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """init + a change squashed smoothly into [-limit, limit] (limit > 0, per pixel)."""
    return init + limit * torch.tanh((generated - init) / limit)


class EmboldenTerm(RegionTerm):
    kind = "embolden"
    min_scale = 1e-5
    scale_from = "start"  # the change is bounded, so noise is no yardstick

    def __init__(
        self, key: str, weight: float, region_row: int, init: torch.Tensor, strength: float, circular: bool = False
    ):
        super().__init__(key, weight, region_row)
        with torch.no_grad():
            self.target = emboldened(init, strength, circular)

    def raw(self, ctx: StepContext) -> torch.Tensor:
        weight = self.region_weight(ctx)
        return masked_mean((ctx.image - self.target).pow(2), weight)
