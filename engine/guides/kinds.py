"""The table of guide kinds: for each, its spec model, its term builder and what it needs.

One row per kind, beside the contract's row (regia_contract/kinds.py: label, tooltip, needs), which the add-on
builds its menus and specs from. The spec's guide union (engine/spec.py) is made from these models; engine/job.py
builds every placed guide through `builder(kind)`. Torch-free: builders are named "module:function" and imported
only when a job is prepared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from regia_contract.kinds import GUIDE_KINDS, SYMMETRY_AXES, GuideKind
from regia_contract.limits import MAX_PALETTE, MAX_PROMPT

from ..spec_types import HexColor, ImageRef, Strict, Weight


class TextGuide(Strict):
    """A text prompt; a negative weight makes it negative text. Needs a CLIP model."""

    kind: Literal["text"]
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    weight: Weight = 1.0


class ImageGuide(Strict):
    """An inspiration image, matched by its CLIP embedding. Needs a CLIP model."""

    kind: Literal["image"]
    image: ImageRef
    weight: Weight = 1.0


class StyleGuide(Strict):
    """Texture and colour statistics of an image (any size), matched inside the region."""

    kind: Literal["style"]
    image: ImageRef
    weight: Weight = 1.0


class ContentGuide(Strict):
    """Layout of an image: its low frequencies and structure. Resized to cover the canvas."""

    kind: Literal["content"]
    image: ImageRef
    weight: Weight = 1.0


class ScribbleGuide(Strict):
    """Colour strokes on a transparent canvas-sized PNG: where alpha is set, colours follow."""

    kind: Literal["scribble"]
    image: ImageRef
    weight: Weight = 1.0


class OutlineGuide(Strict):
    """Drawn lines (dark on light, or opaque on transparent) at canvas size: edges follow them."""

    kind: Literal["outline"]
    image: ImageRef
    weight: Weight = 1.0


class PaletteGuide(Strict):
    """Pulls every pixel towards its nearest palette colour."""

    kind: Literal["palette"]
    colors: list[HexColor] = Field(min_length=1, max_length=MAX_PALETTE)
    weight: Weight = 1.0


class TvGuide(Strict):
    """Smoothness (total variation) inside the region: a negative weight adds grain."""

    kind: Literal["tv"]
    weight: Weight = 1.0


class SaturationGuide(Strict):
    """Colourfulness inside the region: a negative weight greys it."""

    kind: Literal["saturation"]
    weight: Weight = 1.0


class SymmetryGuide(Strict):
    """Mirror symmetry about the middle of the region's own bounds: `vertical` mirrors left and right, `horizontal`
    top and bottom."""

    kind: Literal["symmetry"]
    axis: Literal[SYMMETRY_AXES] = "vertical"  # type: ignore[valid-type]
    weight: Weight = 1.0


@dataclass(frozen=True)
class GuideEntry:
    info: GuideKind  # the contract's row: label, summary, what it needs (CLIP, an image, a canvas-sized image)
    model: type[Strict]  # the spec model
    builder: str  # "module:function" under engine.guides: (guide, Placement, BuildContext) -> GuideTerm | None
    features: bool = False  # needs the random feature net (engine/features.py)


def _entry(model: type[Strict], builder: str, features: bool = False) -> GuideEntry:
    kind = model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    return GuideEntry(GUIDE_KINDS[kind], model, builder, features)


GUIDES: dict[str, GuideEntry] = {
    entry.info.kind: entry
    for entry in (
        _entry(TextGuide, "clip:place_clip_guide"),
        _entry(ImageGuide, "clip:place_clip_guide"),
        _entry(StyleGuide, "style:build_style", features=True),
        _entry(ContentGuide, "content:build_content", features=True),
        _entry(ScribbleGuide, "strokes:build_scribble"),
        _entry(OutlineGuide, "strokes:build_outline"),
        _entry(PaletteGuide, "palette:build_palette"),
        _entry(TvGuide, "image_losses:build_tv"),
        _entry(SaturationGuide, "image_losses:build_saturation"),
        _entry(SymmetryGuide, "image_losses:build_symmetry"),
    )
}
if set(GUIDES) != set(GUIDE_KINDS):  # pragma: no cover - a row added on one side only
    raise RuntimeError(f"guide kinds differ: engine {sorted(GUIDES)}, contract {sorted(GUIDE_KINDS)}")


def builder(kind: str) -> Callable[..., Any]:
    """The term builder of a guide kind (imports its module, and torch, on first use)."""
    module, _, function = GUIDES[kind].builder.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), function)
