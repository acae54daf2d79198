"""Preparing a job: everything a spec needs is loaded, checked and built before step one.

All problems found here are SpecErrors naming the field, so a bad job fails before it costs
any compute, and the artist learns exactly what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from .errors import SpecError, SpecErrors
from .features import RandomFeatureNet
from .filters import cover_resize, resize_to
from .generators import build_generator
from .guides.base import GuideTerm, StepContext
from .guides.content import ContentTerm
from .guides.embolden import EmboldenTerm, bounded_change, max_change
from .guides.image_losses import SaturationTerm, SymmetryTerm, TotalVariationTerm
from .guides.palette import PaletteTerm, hex_to_rgb
from .guides.strokes import OutlineTerm, ScribbleTerm
from .guides.style import StyleBank, StyleTerm, cached_style_target
from .images import has_alpha, to_mask, to_rgb, to_rgba
from .masks import RegionLayout, build_layout
from .presets import apply_preset
from .refs import ImageSource
from .spec import CLIP_GUIDE_KINDS, JobSpec

if TYPE_CHECKING:
    from .guides.clip import ClipBank

REFERENCE_SEED = 1234
SUPPORTED_GUIDES = "style, content, scribble, outline, palette"
_FEATURE_NETS: dict[torch.device, RandomFeatureNet] = {}


def feature_net(device: torch.device) -> RandomFeatureNet:
    """One fixed-seed net per device and process: built once, shared by every job."""
    if device not in _FEATURE_NETS:
        _FEATURE_NETS[device] = RandomFeatureNet().to(device).eval()
    return _FEATURE_NETS[device]


@dataclass
class PreparedJob:
    spec: JobSpec
    device: torch.device
    init: torch.Tensor | None
    layout: RegionLayout
    generator: nn.Module
    terms: list[GuideTerm]
    net: RandomFeatureNet | None
    style_bank: StyleBank | None
    embolden_limit: torch.Tensor | None = None
    clip_bank: ClipBank | None = None

    def render(self) -> torch.Tensor:
        """Generator output, with embolden bounds and keep/uncovered pixels composited in."""
        generated = self.generator()
        if self.embolden_limit is not None and self.init is not None:
            bounded = bounded_change(generated, self.init, self.embolden_limit)
            generated = torch.lerp(generated, bounded, self.layout.embolden)
        return self.layout.composite(generated, self.init)

    def reference_losses(self) -> torch.Tensor:
        """Raw losses of a fixed uniform-noise image: the yardstick that makes weights comparable.

        Normalised by it, a loss of 1 means "as far off as noise" for every guide, whatever the
        init image, so a guide the init already nearly meets is not blown up.
        """
        rng = torch.Generator().manual_seed(REFERENCE_SEED)
        noise = torch.rand(1, 3, self.spec.height, self.spec.width, generator=rng).to(self.device)
        with torch.no_grad():
            ctx = self.context(self.layout.composite(noise, self.init))
            return torch.stack([term.raw(ctx) for term in self.terms])

    def context(self, image: torch.Tensor, shift: tuple[int, int] = (0, 0)) -> StepContext:
        return StepContext(
            image=image,
            layout=self.layout,
            net=self.net,
            style_bank=self.style_bank,
            shift=shift,
            clip_bank=self.clip_bank,
        )


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x C float array -> (1, C, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device)


class _Loader:
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


def _clip_guide_fields(spec: JobSpec) -> list[tuple[str, str]]:
    """(field path of .kind, kind) of every text or image guide, top level and in regions."""
    found = []
    for path, guides in [("guides", spec.guides)] + [
        (f"regions[{i}].guides", r.guides) for i, r in enumerate(spec.regions)
    ]:
        for index, guide in enumerate(guides):
            if guide.kind in CLIP_GUIDE_KINDS:
                found.append((f"{path}[{index}].kind", guide.kind))
    return found


def clip_guides_used(spec: JobSpec) -> bool:
    """Whether the spec has text or image guides, and so needs models.clip loaded."""
    return bool(_clip_guide_fields(spec))


def _clip_problems(spec: JobSpec) -> list[SpecError]:
    """CLIP guides need models.clip set and its weights on this machine (checked without loading them)."""
    guide_fields = _clip_guide_fields(spec)
    if not guide_fields:
        return []  # models.clip without CLIP guides is fine: nothing loads it
    clip = spec.models.clip
    if clip is None:
        return [
            SpecError(
                field_path,
                f"{kind} guides need a CLIP model: set models.clip {{name, weights}}, "
                'e.g. {"name": "ViT-B-32", "weights": "laion2b_s34b_b79k"}',
                value=kind,
                allowed=f"{SUPPORTED_GUIDES} (text and image guides need models.clip)",
            )
            for field_path, kind in guide_fields
        ]
    from .models import check_clip_available  # open_clip loads only for jobs that use CLIP

    missing = check_clip_available(clip.name, clip.weights)
    if missing is not None:
        return [missing]
    return []


def check_capabilities(spec: JobSpec) -> None:
    """What this engine cannot run, found from the spec alone (no images, no model loading, no network): CLIP
    guides without models.clip or with weights not on this machine, keep or embolden without an init image.
    prepare_job runs it first; the server runs it at submission."""
    problems = _clip_problems(spec)
    for index, region in enumerate(spec.regions):
        if region.mode in ("keep", "embolden") and spec.init is None:
            problems.append(
                SpecError(
                    f"regions[{index}].mode",
                    f"{region.mode} needs an init image (set init.image)",
                    value=region.mode,
                    allowed="edit, or add init.image",
                )
            )
    if problems:
        raise SpecErrors(problems)


def _ink(image: Image.Image) -> np.ndarray:
    """Where a drawing has been drawn: its alpha, or darkness on a light page."""
    if has_alpha(image):
        return to_rgba(image)[..., 3:4]
    return 1.0 - to_rgb(image).mean(axis=2, keepdims=True)


def _stroke_rgba(image: Image.Image) -> np.ndarray:
    """Scribble strokes as RGBA; without alpha, near-white paper counts as no stroke."""
    rgba = to_rgba(image)
    if not has_alpha(image):
        rgba[..., 3] = (rgba[..., :3].min(axis=2) < 0.98).astype(np.float32)
    return rgba


def _style_reference(image: Image.Image, width: int, height: int, device: torch.device) -> torch.Tensor:
    """Reference scaled to about the canvas's area, keeping its aspect, so texture scale matches."""
    tensor = _tensor(to_rgb(image), device)
    h, w = tensor.shape[-2:]
    scale = ((width * height) / (w * h)) ** 0.5
    return resize_to(tensor, max(16, round(h * scale)), max(16, round(w * scale)))


def prepare_job(spec: JobSpec, source: ImageSource, device: torch.device) -> PreparedJob:
    spec = apply_preset(spec)
    check_capabilities(spec)
    width, height = spec.width, spec.height
    loader = _Loader(source, width, height)

    init = None
    if spec.init is not None:
        init = _tensor(to_rgb(loader.canvas_sized(spec.init.image, "init.image", "the init image")), device)

    regions = []
    for index, region in enumerate(spec.regions):
        path = f"regions[{index}].mask"
        mask = to_mask(loader.canvas_sized(region.mask, path, "the mask"))
        if mask.max() <= 0:
            raise SpecError(
                path,
                "the mask is empty (all black or fully transparent): paint the region or remove it",
                value=region.mask,
            )
        regions.append((region.name, region.mode, mask, region.feather))
    layout = build_layout(height, width, regions, init is not None, device)

    # (region row, region name, guide, field path, key) for every guide that acts somewhere.
    placements = []
    if spec.regions:
        for index, region in enumerate(spec.regions):
            if region.mode == "keep":
                continue
            row = layout.names.index(region.name)
            for g_index, guide in enumerate(region.guides):
                placements.append(
                    (row, guide, f"regions[{index}].guides[{g_index}]", f"{region.name}/{guide.kind}.{g_index}")
                )
            if region.mode == "edit":
                for g_index, guide in enumerate(spec.guides):
                    placements.append((row, guide, f"guides[{g_index}]", f"{region.name}/{guide.kind}.g{g_index}"))
    else:
        for g_index, guide in enumerate(spec.guides):
            placements.append((0, guide, f"guides[{g_index}]", f"canvas/{guide.kind}.g{g_index}"))

    needs_net = any(guide.kind in ("style", "content") for _, guide, _, _ in placements)
    net = feature_net(device) if needs_net else None
    style_rows = sorted({row for row, guide, _, _ in placements if guide.kind == "style"})
    style_targets: dict[str, list] = {}
    style_terms: list[StyleTerm] = []

    terms: list[GuideTerm] = []
    for row, guide, path, key in placements:
        field_path = f"{path}.image"
        if guide.kind == "style":
            if guide.image not in style_targets:
                image = loader.open(guide.image, field_path)
                style_targets[guide.image] = cached_style_target(
                    net, image, (width, height), device, partial(_style_reference, image, width, height, device)
                )
            term = StyleTerm(key, guide.weight, len(style_terms), style_rows.index(row), style_targets[guide.image])
            style_terms.append(term)
            terms.append(term)
        elif guide.kind == "content":
            reference = cover_resize(_tensor(to_rgb(loader.open(guide.image, field_path)), device), height, width)
            terms.append(ContentTerm(key, guide.weight, row, reference, net))
        elif guide.kind == "scribble":
            rgba = _stroke_rgba(loader.canvas_sized(guide.image, field_path, "the scribble"))
            terms.append(ScribbleTerm(key, guide.weight, row, _tensor(rgba, device)))
        elif guide.kind == "outline":
            ink = _ink(loader.canvas_sized(guide.image, field_path, "the outline"))
            terms.append(OutlineTerm(key, guide.weight, row, _tensor(ink, device)))
        elif guide.kind == "palette":
            terms.append(PaletteTerm(key, guide.weight, row, hex_to_rgb(guide.colors).to(device)))

    def open_rgb(ref: str, field_path: str) -> torch.Tensor:
        return _tensor(to_rgb(loader.open(ref, field_path)), device)

    clip_bank = None
    if spec.models.clip is not None:  # open_clip loads only for jobs that use it
        from .guides.clip import build_clip_terms

        clip_terms, clip_bank = build_clip_terms(spec, placements, layout, init, open_rgb, device)
        terms.extend(clip_terms)

    embolden_limit = None
    if init is not None and "embolden" in layout.modes:
        limit = torch.zeros_like(layout.free)
        for region in spec.regions:
            if region.mode == "embolden":
                row = layout.names.index(region.name)
                terms.append(EmboldenTerm(f"{region.name}/embolden", 1.0, row, init, region.strength))
                limit = limit + layout.guided[row : row + 1] * max_change(region.strength)
        embolden_mass = layout.embolden * layout.free
        embolden_limit = (limit / embolden_mass.clamp_min(1e-8)).clamp_min(1e-6)

    for name, term_class in (("tv", TotalVariationTerm), ("saturation", SaturationTerm), ("symmetry", SymmetryTerm)):
        weight = getattr(spec.losses, name)
        if weight != 0:
            terms.append(term_class(f"global/{name}", weight))

    rng = torch.Generator().manual_seed(spec.seed)
    generator = build_generator(spec.generator, height, width, init, rng).to(device)
    return PreparedJob(
        spec=spec,
        device=device,
        init=init,
        layout=layout,
        generator=generator,
        terms=terms,
        net=net,
        style_bank=StyleBank(layout.guided[style_rows], style_terms) if style_terms else None,
        embolden_limit=embolden_limit,
        clip_bank=clip_bank,
    )
