"""Style: the region's masked feature statistics match those of a reference image."""

from __future__ import annotations

import torch

from ..features import image_stats, style_distance
from .base import GuideTerm, StepContext


class StyleTerm(GuideTerm):
    kind = "style"
    min_scale = 1e-3

    def __init__(self, key: str, weight: float, stats_row: int, target: list[tuple[torch.Tensor, torch.Tensor]]):
        super().__init__(key, weight)
        self.stats_row = stats_row
        self.target = target

    @property
    def needs_features(self) -> bool:
        return True

    def raw(self, ctx: StepContext) -> torch.Tensor:
        row = self.stats_row
        mine = [(mean[row : row + 1], gram[row : row + 1]) for mean, gram in ctx.region_stats]
        return style_distance(mine, self.target)[0]


def style_target(net, reference: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Statistics of a reference image, computed once per job (and shareable across jobs)."""
    with torch.no_grad():
        return image_stats(net(reference))
