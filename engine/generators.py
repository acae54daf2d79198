"""Generators: parameters -> an RGB image in [0, 1], shape (1, 3, H, W), and the table of generator kinds.

Both can start exactly from an init image, so that the first preview is the artist's image. Each kind names the
runner family that runs it (engine/execute.py): "optimise" for these parameterised images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import SpecError
from .spec import FourierGenerator, PixelsGenerator

LOGIT_EPS = 1e-4


def logit(image: torch.Tensor) -> torch.Tensor:
    x = image.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS)
    return torch.log(x) - torch.log1p(-x)


def wrapped_upsampling(size: int, source: int) -> torch.Tensor:
    """(size, source): bilinear upsampling along one axis of a periodic signal, with F.interpolate's sample positions
    (align_corners=False), the neighbour past either end being the other end's pixel."""
    position = (torch.arange(size, dtype=torch.float64) + 0.5) * source / size - 0.5
    low = position.floor()
    frac = position - low
    matrix = torch.zeros(size, source, dtype=torch.float64)
    rows = torch.arange(size)
    matrix.index_put_((rows, low.long() % source), 1 - frac, accumulate=True)
    matrix.index_put_((rows, (low.long() + 1) % source), frac, accumulate=True)
    return matrix.float()


class PixelPyramid(nn.Module):
    """Sum of `scales` pixel grids, each half the size of the one before, through a sigmoid.

    Coarse levels move large areas in one optimiser step; the finest level carries detail. On a tileable canvas the
    coarse levels are upsampled as periodic signals, so the canvas's right edge flows into its left.
    """

    def __init__(
        self,
        height: int,
        width: int,
        scales: int,
        init: torch.Tensor | None,
        rng: torch.Generator,
        tileable: bool = False,
    ):
        super().__init__()
        self.size = (height, width)
        self.tileable = tileable
        levels = []
        for level in range(scales):
            h, w = max(1, math.ceil(height / 2**level)), max(1, math.ceil(width / 2**level))
            levels.append(nn.Parameter(torch.zeros(1, 3, h, w)))
        self.levels = nn.ParameterList(levels)
        with torch.no_grad():
            if init is not None:
                self.levels[0].copy_(logit(init))
            else:
                coarsest = self.levels[-1]
                coarsest.copy_(torch.randn(coarsest.shape, generator=rng) * 0.5)
                self.levels[0].copy_(torch.randn(self.levels[0].shape, generator=rng) * 0.05)
        if tileable:  # each coarse level's row and column upsampling matrices
            for index, level in enumerate(self.levels[1:], 1):
                h, w = level.shape[-2:]
                self.register_buffer(f"rows{index}", wrapped_upsampling(height, h), persistent=False)
                self.register_buffer(f"cols{index}", wrapped_upsampling(width, w).t(), persistent=False)

    def upsampled(self, index: int) -> torch.Tensor:
        """Coarse level `index` (1 or more) at the canvas's size."""
        level = self.levels[index]
        if not self.tileable:
            return F.interpolate(level, size=self.size, mode="bilinear", align_corners=False)
        return getattr(self, f"rows{index}") @ level @ getattr(self, f"cols{index}")

    def forward(self) -> torch.Tensor:
        total = self.levels[0]
        for index in range(1, len(self.levels)):
            total = total + self.upsampled(index)
        return torch.sigmoid(total)


# Square root of the colour correlation of natural images (Lucid / pixray's fft drawer).
_COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)
_COLOR_MIX = _COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()


def spectrum_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """1 / f^decay per rfft2 bin, so that all frequencies learn at a natural-image rate."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=torch.float64)[None, :]
    freqs = torch.sqrt(fx**2 + fy**2)
    scale = 1.0 / torch.clamp(freqs, min=1.0 / max(height, width)) ** decay
    # Lucid's normalisation: the mean colour moves one unit per unit of its parameter.
    return scale * math.sqrt(height * width)


class FourierImage(nn.Module):
    """Colour-decorrelated Fourier parameterisation with spectral decay."""

    def __init__(self, height: int, width: int, decay: float, init: torch.Tensor | None, rng: torch.Generator):
        super().__init__()
        self.size = (height, width)
        self.register_buffer("scale", spectrum_scale(height, width, decay).to(torch.float32), persistent=False)
        self.register_buffer("mix", _COLOR_MIX.to(torch.float32), persistent=False)
        shape = (1, 3, height, width // 2 + 1, 2)
        if init is not None:
            spectrum = self._spectrum_for(init)
        else:
            spectrum = torch.randn(shape, generator=rng, dtype=torch.float32) * 0.01
        self.spectrum = nn.Parameter(spectrum)

    def _spectrum_for(self, init: torch.Tensor) -> torch.Tensor:
        # Invert every stage in float64 so that forward() reproduces init to float precision.
        decorrelated = logit(init.double())
        mixed = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_COLOR_MIX), decorrelated)
        spectrum = torch.fft.rfft2(mixed * 4.0) / self.scale.double()
        return torch.view_as_real(spectrum).float().contiguous()

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size) / 4.0
        image = torch.einsum("ij,bjhw->bihw", self.mix, image)
        return torch.sigmoid(image)


Builder = Callable[[object, int, int, "torch.Tensor | None", torch.Generator, bool], nn.Module]


@dataclass(frozen=True)
class GeneratorEntry:
    runner: str  # the runner family that runs it (engine/execute.py)
    # (spec config, height, width, init on the CPU or None, rng, tileable) -> module, or None for generators the
    # runner sets up itself (a sampler loads its model when it starts)
    build: Builder | None = None
    prompts: bool = False  # text guides are its prompts (they need no CLIP model and become no loss term)


GENERATORS: dict[str, GeneratorEntry] = {
    "pixels": GeneratorEntry("optimise", lambda c, h, w, init, rng, t: PixelPyramid(h, w, c.scales, init, rng, t)),
    # irfft2 makes a periodic image: the Fourier image is tileable as it is
    "fourier": GeneratorEntry("optimise", lambda c, h, w, init, rng, _: FourierImage(h, w, c.decay, init, rng)),
    "diffusion": GeneratorEntry("sample", prompts=True),
}


def build_generator(
    config: PixelsGenerator | FourierGenerator,
    height: int,
    width: int,
    init: torch.Tensor | None,
    rng: torch.Generator,
    tileable: bool = False,
) -> nn.Module | None:
    """The generator of `config.kind` (None when its runner sets it up); an unknown kind is a SpecError naming the
    known ones (never a default). `tileable`: its image wraps around (the spec's `tileable`)."""
    entry = generator_entry(config.kind)
    if entry.build is None:
        return None
    init_cpu = init.detach().cpu().float() if init is not None else None
    return entry.build(config, height, width, init_cpu, rng, tileable)


def generator_entry(kind: str) -> GeneratorEntry:
    """The table's row for a generator kind; an unknown kind is a SpecError naming the known ones."""
    entry = GENERATORS.get(kind)
    if entry is None:
        raise SpecError("generator.kind", "unknown generator", value=kind, allowed=", ".join(GENERATORS))
    return entry
