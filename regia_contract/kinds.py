"""The kinds a job spec names, with what each guide kind needs: one table for the engine and the add-on."""

from __future__ import annotations

from dataclasses import dataclass

# What a guide needs besides its weight.
CLIP = "clip"  # a CLIP model (models.clip)
IMAGE = "image"  # a reference image of any size
CANVAS_IMAGE = "canvas_image"  # an image exactly the canvas's size, drawn over it
COLORS = "colors"  # a list of #rrggbb colours
PROMPT = "prompt"  # text
AXIS = "axis"  # a mirror axis


@dataclass(frozen=True)
class GuideKind:
    kind: str  # the spec's name
    label: str  # Title Case, as the add-on shows it
    summary: str  # one line: what it does (the add-on's tooltip, the schema's description)
    needs: frozenset[str] = frozenset()

    @property
    def needs_clip(self) -> bool:
        return CLIP in self.needs

    @property
    def image(self) -> str | None:
        """ "reference", "canvas" or None: the kind of image the guide takes."""
        return "canvas" if CANVAS_IMAGE in self.needs else "reference" if IMAGE in self.needs else None


GUIDE_KINDS: dict[str, GuideKind] = {
    kind.kind: kind
    for kind in (
        GuideKind("text", "Text", "A text prompt; a negative weight makes it negative text", frozenset({CLIP, PROMPT})),
        GuideKind("image", "Inspiration", "An inspiration image, matched by its CLIP embedding",
                  frozenset({CLIP, IMAGE})),
        GuideKind("style", "Style", "Texture and color statistics of an image, matched inside the region",
                  frozenset({IMAGE})),
        GuideKind("content", "Content", "The layout of an image: its low frequencies and structure",
                  frozenset({IMAGE})),
        GuideKind("scribble", "Scribble", "Color strokes on a transparent canvas-sized image: colors follow them",
                  frozenset({CANVAS_IMAGE})),
        GuideKind("outline", "Outline", "Drawn lines at canvas size: edges follow them", frozenset({CANVAS_IMAGE})),
        GuideKind("palette", "Palette", "Pulls every pixel towards its nearest palette color", frozenset({COLORS})),
        GuideKind("tv", "Smoothness", "Fewer, softer changes between neighbouring pixels; negative adds grain"),
        GuideKind("saturation", "Saturation", "More colorful; a negative weight grays the region"),
        GuideKind("symmetry", "Symmetry", "Mirror symmetry about the region's own middle, vertical or horizontal axis",
                  frozenset({AXIS})),
    )
}  # fmt: skip
CLIP_GUIDE_KINDS = tuple(k for k, v in GUIDE_KINDS.items() if v.needs_clip)
CANVAS_GUIDE_KINDS = tuple(k for k, v in GUIDE_KINDS.items() if v.image == "canvas")
IMAGE_GUIDE_KINDS = tuple(k for k, v in GUIDE_KINDS.items() if v.image is not None)
LOSS_GUIDE_KINDS = ("tv", "saturation", "symmetry")  # also the top-level `losses` shorthand's keys

SYMMETRY_AXES = ("vertical", "horizontal")  # vertical: left and right mirror each other
REGION_MODES = ("edit", "keep", "embolden")
GENERATOR_KINDS = ("pixels", "fourier", "diffusion")
DIFFUSION_SAMPLERS = ("euler", "euler_ancestral", "ddim", "dpmpp_2m")  # diffusers schedulers, by their usual names
OPTIMIZER_KINDS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
SEED_RULES = ("fixed", "per_shot")
