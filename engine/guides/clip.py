"""CLIP guidance per region: text, negative text, inspiration images, and embolden's own direction.

Every CLIP term of a job goes through one ClipBank. Each step it cuts the image into square cutouts inside
every guided region (each region's share of the budget follows its area), sends ALL of them through ONE CLIP
image forward, and scores every term against the cutouts of its own region in one (cutouts x terms) distance
matrix. So K regions cost about what one region with the same cutout budget costs, not K times as much.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from ..cutouts import DrawnCutouts, RegionCutouts
from ..masks import RegionLayout
from ..models import ClipBundle, load_clip
from ..placement import BuildContext, Placement
from .base import GuideTerm, StepContext

Sampler = Callable[[int], RegionCutouts]  # a cutout sampler for a given budget, with the job's settings

# Cutouts of an inspiration image averaged into its embedding: enough to cover it, computed once per job.
REFERENCE_CUTOUTS = 16


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors (VQGAN-CLIP's loss): smooth, and bounded."""
    return (a - b).norm(dim=-1).div(2).clamp(max=1.0).arcsin().pow(2).mul(2)


class ClipTerm(GuideTerm):
    """One CLIP target for one region. A negative weight repels (negative text)."""

    kind = "clip"
    min_scale = 1e-3

    def __init__(self, key: str, weight: float, region_row: int, target: torch.Tensor):
        super().__init__(key, weight)
        self.region_row = region_row  # the region's row in the layout
        self.target = target / target.norm(dim=-1, keepdim=True)  # (D,)
        self.index = -1  # this term's column in the bank, set by ClipBank

    def raw(self, ctx: StepContext) -> torch.Tensor:
        return ctx.clip_losses[self.index]


class ClipBank:
    """The regions with CLIP terms, the cutout sampler and the model: one forward per step for all of them."""

    def __init__(
        self, bundle: ClipBundle, cutouts: RegionCutouts, terms: list[ClipTerm], layout: RegionLayout, seed: int
    ):
        self.bundle = bundle
        self.cutouts = cutouts
        self.rows = sorted({term.region_row for term in terms})  # layout rows that CLIP looks at
        # One tensor for the whole job: the cutout planner reads these masks to the host once, keyed on it.
        self.weights = layout.guided[self.rows]
        for index, term in enumerate(terms):
            term.index = index
        device = terms[0].target.device
        self.targets = torch.stack([term.target for term in terms])  # (T, D)
        # Which of self.rows each term belongs to, to match cutouts (whose region indexes self.rows).
        self.term_region = torch.tensor([self.rows.index(t.region_row) for t in terms], device=device)
        self.generator = torch.Generator().manual_seed(seed)

    def losses(self, ctx: StepContext) -> torch.Tensor:
        """Every CLIP term's loss, shape (T,): the mean spherical distance over its region's cutouts, each
        cutout weighted by how much of it lies in the region."""
        if ctx.planned_cutouts is None:
            cut = self.cutouts(ctx.image, self.weights, self.generator)
        else:
            cut = self.cutouts.cut(ctx.image, ctx.planned_cutouts)
        pixels = cut.pixels.contiguous(memory_format=torch.channels_last)
        with _autocast(pixels.device):
            embeddings = self.bundle.encode_images(pixels)  # the one CLIP image forward of this step
        embeddings = embeddings.float()
        distances = spherical_distance(embeddings[:, None, :], self.targets[None, :, :])  # (N, T)
        member = (cut.region[:, None] == self.term_region[None, :]).to(distances.dtype) * cut.weights[:, None]
        return (distances * member).sum(0) / member.sum(0).clamp_min(1e-8)

    def draw(self) -> DrawnCutouts:
        """The next step's cutout choices, on the host, from the bank's own generator: what `losses` would draw."""
        return self.cutouts.draw(self.weights, self.generator)


def _autocast(device: torch.device) -> AbstractContextManager[Any]:
    """bf16 on CUDA where supported (the matmuls dominate); full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        # A CUDA graph must not keep autocast's cast cache: its casts would live in the graph's memory pool. (Traced
        # by torch.compile, autocast has no cache to keep; the check is skipped there.)
        capturing = not torch.compiler.is_compiling() and torch.cuda.is_current_stream_capturing()
        return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not capturing)
    return nullcontext()


def text_target(bundle: ClipBundle, prompt: str) -> torch.Tensor:
    return bundle.encode_texts([prompt])[0]


def _mean_embedding(
    bundle: ClipBundle, sampler: Sampler, image: torch.Tensor, weights: torch.Tensor, seed: int
) -> torch.Tensor:
    """The normalised mean embedding of an image's cutouts (inside `weights`), computed once per job."""
    with torch.no_grad():
        cut = sampler(REFERENCE_CUTOUTS)(image, weights, torch.Generator().manual_seed(seed))
        mean = bundle.encode_images(cut.pixels).float().mean(0)
    return mean / mean.norm()


def image_target(bundle: ClipBundle, sampler: Sampler, image: torch.Tensor, seed: int) -> torch.Tensor:
    """An inspiration image's embedding, from cutouts all over it."""
    return _mean_embedding(bundle, sampler, image, torch.ones_like(image[:, :1]), seed)


def embolden_target(
    bundle: ClipBundle, sampler: Sampler, init: torch.Tensor, region: torch.Tensor, strength: float, seed: int
) -> torch.Tensor:
    """The region's own direction, pushed further: its embedding moved away from the whole image's, so the
    region becomes more of what sets it apart."""
    own = _mean_embedding(bundle, sampler, init, region, seed)
    everything = _mean_embedding(bundle, sampler, init, torch.ones_like(region), seed)
    target = own + strength * (own - everything)
    return target / target.norm()


def place_clip_guide(guide: Any, place: Placement, ctx: BuildContext) -> None:
    """Text and inspiration guides are built together, with one bank for the job (build_clip_terms)."""
    ctx.clip_placements.append(place)


def build_clip_terms(ctx: BuildContext, placed: Sequence[Placement]) -> tuple[list[ClipTerm], ClipBank | None]:
    """The CLIP terms of a job and their shared bank: one per text or inspiration guide placed, and embolden's own
    direction per embolden region; none (and no model loaded) when nothing needs CLIP."""
    spec, layout, init, device = ctx.spec, ctx.layout, ctx.init, ctx.device
    embolden = [r for r in spec.regions if r.mode == "embolden"] if init is not None else []
    if spec.models.clip is None or not (placed or embolden):
        return [], None
    bundle = load_clip(spec.models.clip.name, spec.models.clip.weights, device)
    settings = spec.cutouts

    def sampler(count: int, wrap: bool = spec.tileable) -> RegionCutouts:
        """Cutouts with the job's settings; `wrap` for the canvas (and init) of a tileable job."""
        return RegionCutouts(
            bundle.image_size, count, settings.min_per_region, settings.cut_pow, settings.augment, wrap=wrap
        )

    def reference_sampler(count: int) -> RegionCutouts:  # an inspiration image is no tile, whatever the canvas
        return sampler(count, wrap=False)

    terms: list[ClipTerm] = []
    for place in placed:
        guide = place.guide
        if guide.kind == "text":
            target = text_target(bundle, guide.prompt)
        else:
            target = image_target(bundle, reference_sampler, ctx.rgb(guide.image, f"{place.path}.image"), spec.seed)
        terms.append(ClipTerm(place.key, guide.weight, place.row, target.to(device)))
    for region in embolden:
        row = layout.names.index(region.name)
        weights = layout.guided[row : row + 1]
        target = embolden_target(bundle, sampler, init, weights, region.strength, spec.seed)
        terms.append(ClipTerm(f"{region.name}/embolden.clip", 1.0, row, target.to(device)))
    return terms, ClipBank(bundle, sampler(settings.count), terms, layout, spec.seed)
