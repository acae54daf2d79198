"""CLIP cutouts' augmentations, as pixray has them: perspective, affine, hue and saturation, then noise.

Each cutout gets its own random parameters, drawn on the CPU from the step's generator (`CutoutAugment.params`),
and all cutouts are augmented in one batched pass on their device (`CutoutAugment.apply`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_perspective_transform

from .cutout_crops import upload

LUMA = (0.299, 0.587, 0.114)


@dataclass
class AugmentParams:
    """Per-cutout augmentation parameters. warp: (N, 3, 3) where each output point samples the input, in
    grid_sample coordinates; colour: (N, 3, 3) colour matrix; strength: (N, 1, 1, 1) noise scale; seed: the
    noise's; noise: that noise already drawn (augment_noise), else apply draws it."""

    warp: torch.Tensor
    colour: torch.Tensor
    strength: torch.Tensor
    seed: int | None
    noise: torch.Tensor | None = None


def augment_noise(out: torch.Tensor, seed: int) -> torch.Tensor:
    """`out` filled with the standard normal noise of `seed`, drawn on its device: the same bytes as
    torch.randn(out.shape, generator=<seeded>), which is empty(...).normal_(generator)."""
    return out.normal_(generator=torch.Generator(device=out.device).manual_seed(seed))


def _wrapped(pixels: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels padded by one wrapped pixel a side, and grid_sample positions (align_corners=False) that read them
    as a periodic image: every position wrapped into [-1, 1), then scaled to the padded size."""
    size = pixels.shape[-1]
    padded = F.pad(pixels, (1, 1, 1, 1), mode="circular")
    return padded, (torch.remainder(grid + 1, 2) - 1) * (size / (size + 2))


class CutoutAugment:
    """pixray's cutout augmentations, each cutout with its own random parameters, in one batched pass:
    perspective, affine (rotation, translation, scale), hue and saturation, then noise of a random strength.

    Why not kornia.augmentation: its colour jitter goes through HSV (0.9 s for 32 cutouts of 224 px on two
    CPU cores, against milliseconds for the colour matrix here), each geometric layer warps the batch again,
    it inverts matrices on the device (a host sync on CUDA), and it draws from torch's global RNG. Here the
    parameters come from the step's generator on the CPU, perspective and affine compose into one homography
    per cutout (kornia solves it) applied by one grid_sample, and hue and saturation into one 3x3 colour
    matrix per cutout.
    """

    def __init__(
        self,
        perspective: float = 0.3,
        degrees: float = 15.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
        hue: float = 0.1,
        saturation: float = 0.1,
        noise: float = 0.1,
        p_perspective: float = 0.7,
        p_affine: float = 0.8,
        p_colour: float = 0.7,
        wrap: bool = False,
    ):
        self.wrap = wrap  # cutouts of a tileable canvas: warps read past a cutout's edge wrapped, not mirrored
        self.perspective, self.p_perspective = perspective, p_perspective
        self.degrees, self.translate, self.scale, self.p_affine = degrees, translate, scale, p_affine
        self.hue, self.saturation, self.p_colour = hue, saturation, p_colour
        self.noise = noise
        self._grids: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def __call__(self, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 3, S, S); the generator (CPU) is advanced by the call."""
        params = self.params(pixels.shape[0], generator)
        warp, colour, strength = upload([params.warp, params.colour, params.strength], pixels.device)
        return self.apply(pixels, AugmentParams(warp, colour, strength, params.seed))

    def params(self, n: int, generator: torch.Generator) -> AugmentParams:
        """Every cutout's random parameters, on the CPU."""
        warp = self._warps(n, generator)
        colour = self._colours(n, generator)
        strength = torch.rand(n, 1, 1, 1, generator=generator) * self.noise
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return AugmentParams(warp, colour, strength, seed)

    def apply(self, pixels: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Augment (N, 3, S, S) pixels with parameters already on their device."""
        if pixels.shape[0] == 0:
            return pixels
        device, dtype = pixels.device, pixels.dtype
        warp, colour, strength = (t.to(dtype) for t in (params.warp, params.colour, params.strength))
        points = self._grid(pixels.shape[-1], device, dtype) @ warp.transpose(1, 2)[:, None]  # (N, S, S, 3)
        grid = points[..., :2] / points[..., 2:]
        if self.wrap:
            pixels, grid = _wrapped(pixels, grid)
        pixels = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        pixels = torch.einsum("nij,njhw->nihw", colour, pixels)
        # The noise is drawn on the device: drawing it on the host and copying would cost more than the rest.
        noise = params.noise
        if noise is None:
            assert params.seed is not None, "augmentations need the noise or its seed"
            noise = augment_noise(torch.empty(pixels.shape, device=device, dtype=dtype), params.seed)
        return pixels + strength * noise

    def _grid(self, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(S, S, 3) homogeneous (x, y, 1) of the pixel centres in grid_sample's [-1, 1] coordinates."""
        key = (size, device, dtype)
        if key not in self._grids:
            line = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
            y, x = torch.meshgrid(line, line, indexing="ij")
            self._grids[key] = torch.stack([x, y, torch.ones_like(x)], -1).to(device, dtype)
        return self._grids[key]

    def _warps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, 3) per cutout: where each output point samples the input, perspective then affine undone."""

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, dtype=torch.float64)

        # Perspective as kornia's RandomPerspective: every corner moves inwards by up to `perspective` of
        # the half-size (1 in these coordinates).
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
        on = (rand(n, 1, 1) < self.p_perspective).double()
        moved = corners - corners * rand(n, 4, 2) * self.perspective * on
        homography = get_perspective_transform(corners.expand(n, 4, 2).contiguous(), moved)

        on = (rand(n) < self.p_affine).double()
        angle = (rand(n) * 2 - 1) * math.radians(self.degrees) * on
        low, high = self.scale
        zoom = 1 + (low + (high - low) * rand(n) - 1) * on
        shift = (rand(n, 2) * 2 - 1) * 2 * self.translate * on[:, None]  # the image is 2 units wide
        affine = torch.zeros(n, 3, 3, dtype=torch.float64)
        affine[:, 0, 0] = affine[:, 1, 1] = zoom * angle.cos()
        affine[:, 0, 1] = -zoom * angle.sin()
        affine[:, 1, 0] = zoom * angle.sin()
        affine[:, :2, 2] = shift
        affine[:, 2, 2] = 1
        # Inverted on the host: on a GPU, an inverse checks for singular matrices and waits for the device.
        return torch.linalg.inv(affine @ homography).float()

    def _colours(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, 3) per cutout: a hue turn about the grey axis, then saturation towards luma."""
        on = (torch.rand(n, generator=generator) < self.p_colour).float()
        turn = (torch.rand(n, generator=generator) * 2 - 1) * self.hue * 2 * math.pi * on
        sat = 1 + (torch.rand(n, generator=generator) * 2 - 1) * self.saturation * on
        axis = torch.full((3,), 3**-0.5)
        cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) * 3**-0.5
        eye = torch.eye(3)
        cos, sin = turn.cos()[:, None, None], turn.sin()[:, None, None]
        rotate = cos * eye + sin * cross + (1 - cos) * torch.outer(axis, axis)  # Rodrigues
        towards_grey = torch.ones(3, 1) * torch.tensor(LUMA)[None, :]  # every channel <- luma
        saturate = sat[:, None, None] * eye + (1 - sat[:, None, None]) * towards_grey
        return saturate @ rotate
