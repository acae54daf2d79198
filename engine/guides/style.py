"""Style: the region's masked feature statistics match those of a reference image.

Every style term of a job goes through one StyleBank, so that a step computes the statistics of
all regions and the distances of all style terms in a few batched operations.
"""

from __future__ import annotations

import torch

from ..features import RandomFeatureNet, RegionSupport, image_stats, style_distance
from .base import GuideTerm, StepContext

Stats = list[tuple[torch.Tensor, torch.Tensor]]


class StyleTerm(GuideTerm):
    kind = "style"
    min_scale = 1e-3

    def __init__(self, key: str, weight: float, index: int, style_region: int, target: Stats):
        super().__init__(key, weight)
        self.index = index  # this term's row in the StyleBank
        self.style_region = style_region  # its region's row among the regions with style guides
        self.target = target

    def raw(self, ctx: StepContext) -> torch.Tensor:
        return ctx.style_distances[self.index]


class StyleBank:
    """The regions with style guides, their supports, and every style term's target, stacked."""

    def __init__(self, masks: torch.Tensor, terms: list[StyleTerm]):
        self.masks = masks  # (S, 1, H, W): one per region that has a style guide
        self.rows = torch.tensor([term.style_region for term in terms], device=masks.device)
        self.targets = [
            (torch.cat([t.target[layer][0] for t in terms]), torch.cat([t.target[layer][1] for t in terms]))
            for layer in range(len(terms[0].target))
        ]
        self.support: RegionSupport | None = None

    def distances(self, features: list[torch.Tensor], strides: list[int], shift: tuple[int, int]) -> torch.Tensor:
        """Style distance of every term, shape (T,), from features jittered by `shift`."""
        if self.support is None:  # the feature maps' sizes are known from the first step on
            self.support = RegionSupport(self.masks, [tuple(f.shape[-2:]) for f in features], strides)
        mine = []
        for layer, feature in enumerate(features):
            mean, gram = self.support.stats(layer, feature, shift)
            mine.append((mean.index_select(0, self.rows), gram.index_select(0, self.rows)))
        return style_distance(mine, self.targets)


def style_target(net: RandomFeatureNet, reference: torch.Tensor) -> Stats:
    """Statistics of a reference image, computed once per job (and shareable across jobs)."""
    with torch.no_grad():
        return image_stats(net(reference))
