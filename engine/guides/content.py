"""Content: the region keeps the layout of a reference image (low frequencies and structure)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..features import shifted
from ..filters import cover_resize, masked_mean
from ..placement import BuildContext, Placement
from .base import RegionTerm, StepContext

STRUCTURE_LAYER = 2  # mid-level random features: edges and shapes, not texture


class ContentTerm(RegionTerm):
    kind = "content"
    min_scale = 1e-4

    def __init__(self, key: str, weight: float, region_row: int, reference: torch.Tensor, net, circular: bool = False):
        super().__init__(key, weight, region_row)
        self.pool = max(2, min(reference.shape[-2:]) // 32)
        with torch.no_grad():
            self.low = F.avg_pool2d(reference, self.pool, ceil_mode=True)
            # the reference's features as the canvas's are computed (`circular` on a tileable canvas)
            feature = net(reference, circular)[STRUCTURE_LAYER]
            self.structure = feature / feature.pow(2).mean().sqrt().clamp_min(1e-8)

    def raw(self, ctx: StepContext) -> torch.Tensor:
        weight = self.region_weight(ctx)
        low = F.avg_pool2d(ctx.image, self.pool, ceil_mode=True)
        low_weight = F.avg_pool2d(weight, self.pool, ceil_mode=True)
        colour = masked_mean((low - self.low).pow(2), low_weight)
        feature = ctx.features[STRUCTURE_LAYER]  # in the jittered frame: move the targets there
        feature = feature / feature.pow(2).mean().sqrt().clamp_min(1e-8)
        stride = ctx.net.strides[STRUCTURE_LAYER]
        target = shifted(self.structure, ctx.shift, stride)
        feat_weight = shifted(F.adaptive_avg_pool2d(weight, feature.shape[-2:]), ctx.shift, stride)
        structure = masked_mean((feature - target).pow(2), feat_weight)
        return colour + 0.1 * structure


def build_content(guide, place: Placement, ctx: BuildContext) -> ContentTerm:
    reference = cover_resize(ctx.rgb(guide.image, f"{place.path}.image"), ctx.height, ctx.width)
    return ContentTerm(place.key, guide.weight, place.row, reference, ctx.net, ctx.spec.tileable)
