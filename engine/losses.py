"""Guide losses on any image a runner has: every term of a job, normalised so that a weight means the same pull for
every guide kind, summed. The optimiser calls it on its render; a sampler would call it on its predicted clean image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .job import PreparedJob

if TYPE_CHECKING:
    from .cutouts import PlannedCutouts
    from .features import Shift


class GuideLosses:
    """`losses(image, shift)` -> (total, per-term weighted values), for one job.

    Each term's raw loss is divided by a scale fixed at the first call: its value on a fixed noise image (the
    reference, computed here, before the first step, so every random draw keeps its order) or its own first value,
    floored, so that 1.0 means "as far off as noise" whatever the guide."""

    def __init__(self, job: PreparedJob):
        self.job = job
        terms = job.terms
        self.keys = [term.key for term in terms]
        device = job.device
        self.weights = torch.tensor([term.weight for term in terms], device=device)
        self.floors = torch.tensor([term.min_scale for term in terms], device=device)
        self.from_start = torch.tensor([term.scale_from == "start" for term in terms], device=device)
        self.reference = job.reference_losses() if terms else None
        self.scales: torch.Tensor | None = None

    def __bool__(self) -> bool:
        return bool(self.keys)

    def raw(
        self, image: torch.Tensor, shift: Shift = (0, 0), planned_cutouts: PlannedCutouts | None = None
    ) -> torch.Tensor:
        """Every term's unweighted loss on `image` (composited as the job's render is), shape (T,). A captured
        step passes its jitter as a tensor and its cutouts drawn beforehand (engine/step_capture.py)."""
        ctx = self.job.context(image, shift)  # type: ignore[arg-type]  # PreparedJob.context passes it through
        ctx.planned_cutouts = planned_cutouts
        return torch.stack([term.raw(ctx) for term in self.job.terms])

    def __call__(
        self, image: torch.Tensor, shift: Shift = (0, 0), planned_cutouts: PlannedCutouts | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.raw(image, shift, planned_cutouts)
        if self.scales is None:
            self.scales = torch.maximum(torch.where(self.from_start, raw.detach(), self.reference).abs(), self.floors)
        values = self.weights * raw / self.scales
        return values.sum(), values
