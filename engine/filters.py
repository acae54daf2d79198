"""Small image filters shared by masks and guides (separable Gaussian, Sobel, luminance)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)


def gaussian_kernel(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def wrap_pad(image: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Circular padding (left, right, top, bottom) of (N, C, H, W) by any amount: F.pad's circular mode allows at
    most the image's own size, so a small image is tiled first."""
    left, right, top, bottom = pad
    height, width = image.shape[-2:]
    tiles_y = 1 + 2 * -(-max(top, bottom) // height)
    tiles_x = 1 + 2 * -(-max(left, right) // width)
    tiled = image.repeat(1, 1, tiles_y, tiles_x)
    y0, x0 = (tiles_y // 2) * height - top, (tiles_x // 2) * width - left
    return tiled[..., y0 : y0 + height + top + bottom, x0 : x0 + width + left + right]


def _pad(image: torch.Tensor, pad: tuple[int, int, int, int], edge: str, circular: bool) -> torch.Tensor:
    return wrap_pad(image, pad) if circular else F.pad(image, pad, mode=edge)


def gaussian_blur(image: torch.Tensor, sigma: float, circular: bool = False) -> torch.Tensor:
    """Blur (N, C, H, W) with reflect padding (`circular`: wrapped around, for a tileable canvas); sigma in pixels.
    sigma <= 0 returns the input."""
    if sigma <= 0:
        return image
    kernel = gaussian_kernel(sigma, image.device).to(image.dtype)
    radius = kernel.numel() // 2
    channels = image.shape[1]
    mode = "reflect" if min(image.shape[-2:]) > radius else "replicate"
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(_pad(image, (radius, radius, 0, 0), mode, circular), horizontal, groups=channels)
    return F.conv2d(_pad(out, (0, 0, radius, radius), mode, circular), vertical, groups=channels)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W)."""
    r, g, b = rgb.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def sobel_magnitude(gray: torch.Tensor, eps: float = 1e-6, circular: bool = False) -> torch.Tensor:
    """Gradient magnitude of (N, 1, H, W); a unit step edge gives about 1. `circular`: a tileable canvas, whose
    edges meet (an edge across the wrap counts), else the border pixels are repeated."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=gray.device) / 4.0
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1).to(gray.dtype)
    grad = F.conv2d(_pad(gray, (1, 1, 1, 1), "replicate", circular), kernels)
    return torch.sqrt(grad.pow(2).sum(1, keepdim=True) + eps)


def masked_mean(values: torch.Tensor, weights: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Weighted mean of (N, C, H, W) values under (N or 1, 1, H, W) weights, over all elements."""
    channels = values.shape[1]
    return (values * weights).sum() / (weights.sum() * channels + eps)


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Area-average down, bilinear up."""
    if image.shape[-2:] == (height, width):
        return image
    if height <= image.shape[-2] and width <= image.shape[-1]:
        return F.interpolate(image, size=(height, width), mode="area")
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def cover_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale so that the image covers height x width, then centre-crop (no distortion)."""
    h, w = image.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    scaled = resize_to(image, new_h, new_w)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return scaled[..., top : top + height, left : left + width]
