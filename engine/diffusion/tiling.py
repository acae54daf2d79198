"""A tileable canvas for the diffusion generator: every padded convolution of its models wraps around while a job runs.

The UNet and the VAE are translation-equivariant but for their convolutions' zero padding, which tells the model
where the canvas ends; with circular padding instead (noise, attention and everything else being position-free) the
sampled image is a torus, whose right edge continues its left and bottom its top. Loaded models are cached and shared
by every job of the process (engine/diffusion/loading.py), so the padding is set for the job and put back after it,
whatever ends the job. Not covered: the VAE encoder's downsampling pads its right and bottom with zeros outside its
convolutions (diffusers' Downsample2D with padding 0), which only an init image goes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from torch import nn


def _pads(conv: nn.Conv2d) -> bool:
    return conv.padding == "same" or any(side > 0 for side in conv.padding)


def padded_convs(models: Iterable[nn.Module]) -> list[nn.Conv2d]:
    """Every Conv2d with padding in `models`."""
    return [conv for model in models for conv in model.modules() if isinstance(conv, nn.Conv2d) and _pads(conv)]


@contextmanager
def circular_padding(models: Iterable[nn.Module], enabled: bool = True) -> Iterator[None]:
    """While the block runs, every padded Conv2d of `models` pads circularly (nothing changes when not `enabled`);
    each gets its own padding mode back after it, an exception included."""
    changed = [(conv, conv.padding_mode) for conv in padded_convs(models)] if enabled else []
    try:
        for conv, _ in changed:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in changed:
            conv.padding_mode = mode
