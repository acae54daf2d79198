"""Scribble and outline: guides drawn at canvas size."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..filters import gaussian_blur, luminance, masked_mean, sobel_magnitude
from ..images import has_alpha, to_rgb, to_rgba
from ..placement import BuildContext, Placement, as_tensor
from .base import RegionTerm, StepContext

EDGE_SOFTNESS = 0.08  # gradient magnitude at which an edge counts as about 2/3 drawn


def stroke_sigma(height: int, width: int) -> float:
    return max(1.5, min(height, width) / 128.0)


class ScribbleTerm(RegionTerm):
    """Where the stroke's alpha is set, the low-passed colour of the image matches the stroke's."""

    kind = "scribble"
    min_scale = 1e-4

    def __init__(self, key: str, weight: float, region_row: int, rgba: torch.Tensor, circular: bool = False):
        super().__init__(key, weight, region_row)
        self.sigma = stroke_sigma(*rgba.shape[-2:])
        rgb, alpha = rgba[:, :3], rgba[:, 3:4]
        with torch.no_grad():
            spread = gaussian_blur(alpha, self.sigma, circular)
            # Normalised convolution: stroke colour spread into its blurred footprint.
            self.colour = gaussian_blur(rgb * alpha, self.sigma, circular) / spread.clamp_min(1e-4)
            self.coverage = spread / spread.amax().clamp_min(1e-8)

    def raw(self, ctx: StepContext) -> torch.Tensor:
        weight = self.region_weight(ctx) * self.coverage
        low = gaussian_blur(ctx.image, self.sigma, ctx.tileable)
        return masked_mean((low - self.colour).pow(2), weight)


def edge_map(image: torch.Tensor, sigma: float, circular: bool = False) -> torch.Tensor:
    """Soft edges in [0, 1) of an RGB image (`circular`: of a tileable canvas, edges across the wrap included)."""
    magnitude = sobel_magnitude(gaussian_blur(luminance(image), 0.7, circular), circular=circular)
    return gaussian_blur(1.0 - torch.exp(-magnitude / EDGE_SOFTNESS), sigma, circular)


class OutlineTerm(RegionTerm):
    """The image's edges lie on the drawn lines, and mostly nowhere else."""

    kind = "outline"
    min_scale = 1e-4

    def __init__(self, key: str, weight: float, region_row: int, ink: torch.Tensor, circular: bool = False):
        super().__init__(key, weight, region_row)
        self.sigma = stroke_sigma(*ink.shape[-2:]) / 1.5
        with torch.no_grad():
            lines = gaussian_blur(ink, self.sigma, circular)
            self.lines = lines / lines.amax().clamp_min(1e-8)

    def raw(self, ctx: StepContext) -> torch.Tensor:
        weight = self.region_weight(ctx)
        edges = edge_map(ctx.image, self.sigma, ctx.tileable)
        error = (edges - self.lines).pow(2)
        # Lines are sparse; balance them against the blank paper so that both count.
        on_lines = masked_mean(error, weight * self.lines)
        off_lines = masked_mean(error, weight * (1.0 - self.lines))
        return on_lines + 0.5 * off_lines


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


def build_scribble(guide, place: Placement, ctx: BuildContext) -> ScribbleTerm:
    rgba = _stroke_rgba(ctx.loader.canvas_sized(guide.image, f"{place.path}.image", "the scribble"))
    return ScribbleTerm(place.key, guide.weight, place.row, as_tensor(rgba, ctx.device), ctx.spec.tileable)


def build_outline(guide, place: Placement, ctx: BuildContext) -> OutlineTerm:
    ink = _ink(ctx.loader.canvas_sized(guide.image, f"{place.path}.image", "the outline"))
    return OutlineTerm(place.key, guide.weight, place.row, as_tensor(ink, ctx.device), ctx.spec.tileable)
