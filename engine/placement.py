"""Where each guide of a spec acts, and what its builder is given: the images it loads, the layout, the feature net.

A placement is one guide in one region: a region's own guides act in it; top-level guides act in every edit region
(or on the whole canvas when the spec has no regions). Builders (engine/guides/kinds.py names them) turn a placement
into a term; the kinds that share one batched computation (style, CLIP) collect theirs in the context, and
prepare_job finishes them after every placement was built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .errors import SpecError
from .images import to_rgb
from .masks import RegionLayout
from .refs import ImageSource
from .spec import JobSpec

if TYPE_CHECKING:
    from .features import RandomFeatureNet
    from .guides.style import StyleTerm


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x C float array -> (1, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device)


class ImageLoader:
    """Decodes each referenced image once; canvas-sized ones are checked by their header before they are decoded."""

    def __init__(self, source: ImageSource, width: int, height: int):
        self.source = source
        self.size = (width, height)
        self.cache: dict[str, Image.Image] = {}

    def open(self, ref: str, field_path: str) -> Image.Image:
        if ref not in self.cache:
            self.cache[ref] = self.source.open(ref, field_path)
        return self.cache[ref]

    def canvas_sized(self, ref: str, field_path: str, what: str) -> Image.Image:
        found = self.cache[ref].size if ref in self.cache else self.source.size(ref, field_path)
        if found != self.size:
            w, h = self.size
            raise SpecError(
                field_path,
                f"{what} is {found[0]}x{found[1]} but the canvas is {w}x{h}; it is not resized",
                value=ref,
                allowed=f"an image of exactly {w}x{h}",
            )
        return self.open(ref, field_path)


@dataclass(frozen=True)
class Placement:
    row: int  # the region's row in the layout (its weights: layout.guided[row])
    guide: Any  # the guide's spec model
    path: str  # its field path in the spec, e.g. "regions[1].guides[0]"
    key: str  # its loss key, e.g. "sky/style.0" (a region's own) or "sky/style.g0" (a top-level guide)


def placements(spec: JobSpec, layout: RegionLayout) -> list[Placement]:
    """Every guide that acts somewhere, in the order its term joins the job."""
    if not spec.regions:
        return [Placement(0, g, f"guides[{i}]", f"canvas/{g.kind}.g{i}") for i, g in enumerate(spec.guides)]
    placed = []
    for index, region in enumerate(spec.regions):
        if region.mode == "keep":
            continue
        row = layout.names.index(region.name)
        placed += [
            Placement(row, g, f"regions[{index}].guides[{i}]", f"{region.name}/{g.kind}.{i}")
            for i, g in enumerate(region.guides)
        ]
        if region.mode == "edit":
            placed += [
                Placement(row, g, f"guides[{i}]", f"{region.name}/{g.kind}.g{i}") for i, g in enumerate(spec.guides)
            ]
    return placed


@dataclass
class BuildContext:
    """What a guide builder may use, shared by all builders of one job."""

    spec: JobSpec
    device: torch.device
    loader: ImageLoader
    layout: RegionLayout
    init: torch.Tensor | None
    net: RandomFeatureNet | None  # the feature net, when a guide of the job needs it (style, content)
    style_rows: list[int] = field(default_factory=list)  # layout rows with a style guide, in order
    style_targets: dict[str, Any] = field(default_factory=dict)  # style image ref -> its statistics
    style_terms: list[StyleTerm] = field(default_factory=list)
    clip_placements: list[Placement] = field(default_factory=list)  # built together, after the others
    clip_bank: Any = None  # engine.guides.clip.ClipBank, once the CLIP terms are built

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def height(self) -> int:
        return self.spec.height

    def rgb(self, ref: str, field_path: str) -> torch.Tensor:
        """An image as a (1, 3, H, W) tensor on the device."""
        return as_tensor(to_rgb(self.loader.open(ref, field_path)), self.device)
