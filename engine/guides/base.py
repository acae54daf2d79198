"""What every guide term shares: the per-step context and the term interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..features import RandomFeatureNet, Shift, jittered_features
from ..masks import RegionLayout

if TYPE_CHECKING:
    from ..cutouts import PlannedCutouts
    from .clip import ClipBank
    from .style import StyleBank


@dataclass
class StepContext:
    """The composited image of one step, with features computed at most once and shared."""

    image: torch.Tensor
    layout: RegionLayout
    net: RandomFeatureNet | None
    style_bank: StyleBank | None = None
    shift: Shift = (0, 0)  # circular jitter of the feature pass, see jittered_features
    clip_bank: ClipBank | None = None
    tileable: bool = False  # the canvas wraps around (the spec's `tileable`): filters read across its edges
    # This step's cutouts, drawn before the step (a captured step, engine/step_capture.py); None: the bank draws them
    planned_cutouts: PlannedCutouts | None = None
    _features: list[torch.Tensor] | None = field(default=None, repr=False)
    _style: torch.Tensor | None = field(default=None, repr=False)
    _clip: torch.Tensor | None = field(default=None, repr=False)

    @property
    def features(self) -> list[torch.Tensor]:
        if self._features is None:
            assert self.net is not None, "a feature guide was built without the feature net"
            self._features = jittered_features(self.net, self.image, self.shift, self.tileable)
        return self._features

    @property
    def style_distances(self) -> torch.Tensor:
        """Every style term's distance, computed together once per step."""
        if self._style is None:
            assert self.style_bank is not None
            assert self.net is not None
            self._style = self.style_bank.distances(self.features, self.net.strides, self.shift)
        return self._style

    @property
    def clip_losses(self) -> torch.Tensor:
        """Every CLIP term's loss, from one batch of cutouts and one CLIP forward for all regions."""
        if self._clip is None:
            assert self.clip_bank is not None, "a CLIP guide was built without the CLIP bank"
            self._clip = self.clip_bank.losses(self)
        return self._clip


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


class RegionTerm(GuideTerm):
    """A term that acts inside one guided region, weighted by that region's mask."""

    def __init__(self, key: str, weight: float, region_row: int):
        super().__init__(key, weight)
        self.region_row = region_row

    def region_weight(self, ctx: StepContext) -> torch.Tensor:
        """(1, 1, H, W) weights of this term's region."""
        return ctx.layout.guided[self.region_row : self.region_row + 1]
