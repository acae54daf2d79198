"""Region masks: feathering, keep precedence, overlap normalisation and the final composite.

- Feather extends a region outward by a soft ramp `feather` pixels wide, so a mask value of 1
  stays exactly 1 and keep regions stay bit-exact where the artist painted them fully.
- Keep regions win over every other region.
- Where guided regions overlap, their weights are divided by their sum, so no pixel is pulled
  harder than weight 1 in total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def feather_outward(mask: np.ndarray, feather: float, wrap: bool = False) -> np.ndarray:
    """Grow the mask by a smooth ramp about `feather` px wide; interior values are untouched. `wrap`: the canvas is
    tileable, so a mask at one edge feathers across it into the opposite edge."""
    if feather <= 0:
        return mask
    from scipy import ndimage  # here, not at the top: scipy.ndimage takes 0.2-0.6 s to import, most jobs never feather

    radius = feather / 2.0
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (xx**2 + yy**2) <= radius**2 + 1e-6
    mode = "wrap" if wrap else "nearest"
    grown = ndimage.grey_dilation(mask, footprint=disk, mode=mode)
    ramp = ndimage.gaussian_filter(grown, sigma=feather / 4.0, mode=mode)
    return np.maximum(mask, ramp).astype(np.float32)


@dataclass
class RegionLayout:
    """Per-pixel weights of every region, on the torch device.

    guided: (R, 1, H, W) weights of the edit/embolden regions after keep and overlap rules.
    free: (1, 1, H, W) how much of each pixel comes from the generator (0 = init exactly).
    embolden: (1, 1, H, W) share of each free pixel that belongs to embolden regions.
    """

    names: list[str]
    modes: list[str]
    guided: torch.Tensor
    free: torch.Tensor
    embolden: torch.Tensor

    def weight_of(self, name: str) -> torch.Tensor:
        """(1, 1, H, W) weights of one guided region."""
        return self.guided[self.names.index(name)].unsqueeze(0)

    def composite(self, generated: torch.Tensor, init: torch.Tensor | None) -> torch.Tensor:
        if init is None:
            return generated
        # lerp with weight 0 returns `init` exactly, which keeps keep-pixels bit-exact.
        return torch.lerp(init, generated, self.free)


def build_layout(
    height: int,
    width: int,
    regions: list[tuple[str, str, np.ndarray, float]],
    has_init: bool,
    device: torch.device,
    wrap: bool = False,
) -> RegionLayout:
    """regions: (name, mode, mask HxW float in [0,1], feather px). An empty list means one
    implicit edit region covering the canvas. `wrap`: the canvas is tileable (feathers wrap around)."""
    if not regions:
        ones = torch.ones(1, 1, 1, height, width, device=device)
        return RegionLayout(["canvas"], ["edit"], ones[0], ones[0].clone(), torch.zeros_like(ones[0]))

    keep = np.zeros((height, width), dtype=np.float32)
    guided_masks: list[np.ndarray] = []
    names, modes = [], []
    for name, mode, mask, feather in regions:
        soft = feather_outward(mask.astype(np.float32), feather, wrap)
        if mode == "keep":
            keep = np.maximum(keep, soft)
        else:
            guided_masks.append(soft)
            names.append(name)
            modes.append(mode)

    open_area = 1.0 - keep
    if guided_masks:
        stack = np.stack(guided_masks) * open_area
        total = stack.sum(0)
        stack = stack / np.maximum(total, 1.0)
        coverage = np.minimum(total, 1.0)
        is_embolden = np.array([m == "embolden" for m in modes], dtype=np.float32)[:, None, None]
        embolden_share = (stack * is_embolden).sum(0) / np.maximum(coverage, 1e-8)
    else:
        stack = np.zeros((0, height, width), dtype=np.float32)
        coverage = np.zeros((height, width), dtype=np.float32)
        embolden_share = np.zeros((height, width), dtype=np.float32)
    # Without an init image there is nothing to keep: uncovered pixels belong to the generator.
    free = coverage if has_init else open_area

    def to_tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)

    return RegionLayout(
        names=names,
        modes=modes,
        guided=to_tensor(stack).reshape(len(names), 1, height, width),
        free=to_tensor(free)[None, None],
        embolden=to_tensor(embolden_share)[None, None],
    )
