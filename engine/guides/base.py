"""What every guide term shares: the per-step context and the term interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from ..features import RandomFeatureNet, masked_stats, masks_for
from ..masks import RegionLayout


@dataclass
class StepContext:
    """The composited image of one step, with features computed at most once and shared."""

    image: torch.Tensor
    layout: RegionLayout
    net: RandomFeatureNet | None
    stats_masks: torch.Tensor | None = None  # (S, 1, H, W): regions that need Gram statistics
    shift: tuple[int, int] = (0, 0)  # random circular jitter of the features, see features
    _features: list[torch.Tensor] | None = field(default=None, repr=False)
    _stats: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)

    @property
    def features(self) -> list[torch.Tensor]:
        if self._features is None:
            assert self.net is not None, "a feature guide was built without the feature net"
            # Jitter: features of a circularly shifted image, so that the optimiser cannot fit
            # the fixed net's pooling grid with high-frequency patterns (Lucid's robustness).
            self._features = self.net(torch.roll(self.image, self.shift, dims=(-2, -1)))
        return self._features

    @property
    def region_stats(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer: (mean (S, C), Gram (S, C, C)) for every region with a style guide, batched."""
        if self._stats is None:
            assert self.stats_masks is not None
            masks = torch.roll(self.stats_masks, self.shift, dims=(-2, -1))
            self._stats = [masked_stats(f, masks_for(f, masks)) for f in self.features]
        return self._stats


class GuideTerm(ABC):
    """One loss term. `raw` is unweighted and unnormalised; the loop normalises it."""

    kind: str = ""
    min_scale: float = 1e-6  # floor for the normaliser, so a guide already met cannot explode
    # What "1.0" means for this term: the loss of a fixed noise image ("reference"), or its
    # own loss at step 0 ("start", for terms whose reachable range is bounded by design).
    scale_from: str = "reference"

    def __init__(self, key: str, weight: float):
        self.key = key
        self.weight = weight

    @abstractmethod
    def raw(self, ctx: StepContext) -> torch.Tensor: ...

    @property
    def needs_features(self) -> bool:
        return False
