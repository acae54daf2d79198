"""Preparing a job: everything a spec needs is loaded, checked and built before step one.

By step: the capabilities the spec needs (CLIP weights, an init for keep and embolden), the init image and the
regions' layout, every guide placed in its region(s) and built through the table of guide kinds, embolden, the
`losses` shorthand, and the generator. All problems found here are SpecErrors naming the field, so a bad job fails
before it costs any compute, and the artist learns exactly what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from regia_contract.kinds import CLIP_GUIDE_KINDS, GUIDE_KINDS

from .errors import SpecError, SpecErrors
from .features import RandomFeatureNet
from .generators import build_generator, generator_entry
from .guides.base import GuideTerm, StepContext
from .guides.embolden import EmboldenTerm, bounded_change, max_change
from .guides.image_losses import SaturationTerm, SymmetryTerm, TotalVariationTerm
from .guides.kinds import GUIDES, builder
from .guides.style import StyleBank
from .images import to_mask, to_rgb
from .masks import RegionLayout, build_layout
from .placement import BuildContext, ImageLoader, Placement, as_tensor, placements
from .presets import apply_preset
from .refs import ImageSource
from .spec import JobSpec

if TYPE_CHECKING:
    from .guides.clip import ClipBank

REFERENCE_SEED = 1234
SUPPORTED_GUIDES = ", ".join(kind for kind in GUIDE_KINDS if kind not in CLIP_GUIDE_KINDS)
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
    generator: nn.Module | None  # None for generators whose runner sets them up (engine/generators.py)
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
            tileable=self.spec.tileable,
        )


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
    """CLIP guides need models.clip set and its weights on this machine (checked without loading them). Text guides
    need none with a generator that takes them as prompts."""
    prompts = generator_entry(spec.generator.kind).prompts
    guide_fields = [(field, kind) for field, kind in _clip_guide_fields(spec) if not (prompts and kind == "text")]
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


def _diffusion_problems(spec: JobSpec) -> list[SpecError]:
    """The diffusion generator needs models.diffusion, with its weights on this machine (checked without loading)."""
    if spec.generator.kind != "diffusion":
        return []
    if spec.models.diffusion is None:
        return [
            SpecError(
                "models.diffusion",
                "the diffusion generator needs a model: set models.diffusion.weights",
                allowed="a diffusers folder, a .safetensors or .ckpt file (SD 1.x, 2.x, SDXL), or 'random:tiny-sd' "
                "(tests only)",
            )
        ]
    from .diffusion.weights import check_diffusion_available  # diffusers loads only for jobs that use it

    missing = check_diffusion_available(spec.models.diffusion.weights)
    return [] if missing is None else [missing]


def check_capabilities(spec: JobSpec) -> None:
    """What this engine cannot run, found from the spec alone (no images, no model loading, no network): CLIP
    guides without models.clip or with weights not on this machine, the diffusion generator without its model,
    keep or embolden without an init image. prepare_job runs it first; the server runs it at submission."""
    problems = _clip_problems(spec) + _diffusion_problems(spec)
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


def _load_canvas(spec: JobSpec, loader: ImageLoader, device: torch.device) -> tuple[torch.Tensor | None, RegionLayout]:
    """The init image and the regions' layout (feathered masks, keep precedence, overlaps)."""
    init = None
    if spec.init is not None:
        init = as_tensor(to_rgb(loader.canvas_sized(spec.init.image, "init.image", "the init image")), device)
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
    return init, build_layout(spec.height, spec.width, regions, init is not None, device, spec.tileable)


def _build_terms(ctx: BuildContext, placed: list[Placement]) -> list[GuideTerm]:
    """Every placed guide's term, through the table of guide kinds, in placement order; then the CLIP terms (one
    bank for all of them, embolden's own direction included)."""
    terms: list[GuideTerm] = []
    for place in placed:
        built = builder(place.guide.kind)(place.guide, place, ctx)
        if built is not None:
            terms.append(built)
    if ctx.spec.models.clip is not None:  # open_clip loads only for jobs that use it
        from .guides.clip import build_clip_terms

        clip_terms, ctx.clip_bank = build_clip_terms(ctx, ctx.clip_placements)
        terms.extend(clip_terms)
    return terms


def _embolden(
    spec: JobSpec, layout: RegionLayout, init: torch.Tensor | None
) -> tuple[list[GuideTerm], torch.Tensor | None]:
    """Embolden regions' terms, and the per-pixel limit of their change (None without embolden regions)."""
    if init is None or "embolden" not in layout.modes:
        return [], None
    terms: list[GuideTerm] = []
    limit = torch.zeros_like(layout.free)
    for region in spec.regions:
        if region.mode == "embolden":
            row = layout.names.index(region.name)
            terms.append(EmboldenTerm(f"{region.name}/embolden", 1.0, row, init, region.strength, spec.tileable))
            limit = limit + layout.guided[row : row + 1] * max_change(region.strength)
    embolden_mass = layout.embolden * layout.free
    return terms, (limit / embolden_mass.clamp_min(1e-8)).clamp_min(1e-6)


def _loss_shorthand(spec: JobSpec) -> list[GuideTerm]:
    """The top-level `losses` object: whole-canvas terms over everything generated (`global/<kind>`)."""
    return [
        term_class(f"global/{name}", getattr(spec.losses, name))
        for name, term_class in (("tv", TotalVariationTerm), ("saturation", SaturationTerm), ("symmetry", SymmetryTerm))
        if getattr(spec.losses, name) != 0
    ]


def _generator(
    spec: JobSpec, init: torch.Tensor | None, rng: torch.Generator, device: torch.device
) -> nn.Module | None:
    generator = build_generator(spec.generator, spec.height, spec.width, init, rng, spec.tileable)
    return None if generator is None else generator.to(device)


def prepare_job(spec: JobSpec, source: ImageSource, device: torch.device) -> PreparedJob:
    """Everything a job needs, loaded, checked and built: a SpecError naming the field before any step runs."""
    spec = apply_preset(spec)
    check_capabilities(spec)
    loader = ImageLoader(source, spec.width, spec.height)
    init, layout = _load_canvas(spec, loader, device)
    placed = placements(spec, layout)
    if generator_entry(spec.generator.kind).prompts:  # its text guides are prompts, not loss terms
        placed = [place for place in placed if place.guide.kind != "text"]
    needs_net = any(GUIDES[place.guide.kind].features for place in placed)
    ctx = BuildContext(spec, device, loader, layout, init, feature_net(device) if needs_net else None)
    ctx.style_rows = sorted({place.row for place in placed if place.guide.kind == "style"})
    terms = _build_terms(ctx, placed)
    embolden_terms, embolden_limit = _embolden(spec, layout, init)
    terms += embolden_terms + _loss_shorthand(spec)
    rng = torch.Generator().manual_seed(spec.seed)
    return PreparedJob(
        spec=spec,
        device=device,
        init=init,
        layout=layout,
        generator=_generator(spec, init, rng, device),
        terms=terms,
        net=ctx.net,
        style_bank=StyleBank(layout.guided[ctx.style_rows], ctx.style_terms) if ctx.style_terms else None,
        embolden_limit=embolden_limit,
        clip_bank=ctx.clip_bank,
    )
