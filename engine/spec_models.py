"""The job spec's generator, optimiser and models (engine/spec.py assembles the job from them): how pixels are made,
how the optimiser steps, and which weights the CLIP and diffusion models load."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from regia_contract.kinds import DIFFUSION_SAMPLERS
from regia_contract.limits import DEFAULT_CFG, DEFAULT_LR, MAX_CFG

from .spec_types import Strict


class PixelsGenerator(Strict):
    """Direct pixels, as a sum of a few resolutions so that coarse changes move fast."""

    kind: Literal["pixels"]
    scales: int = Field(default=4, ge=1, le=8, description="Pyramid levels, each half the size")


class FourierGenerator(Strict):
    """Colour-decorrelated Fourier image with 1/f^decay spectral scaling (pixray / Lucid fft)."""

    kind: Literal["fourier"]
    decay: float = Field(default=1.5, ge=0.0, le=3.0)


class DiffusionGenerator(Strict):
    """A latent diffusion model (models.diffusion) sampled with diffusers' schedulers. Text guides are its prompts,
    one per region (masked cross-attention, one UNet pass per step); the other guides pull on its predicted image."""

    kind: Literal["diffusion"]
    sampler: Literal[DIFFUSION_SAMPLERS] = "euler"  # type: ignore[valid-type]
    cfg: float = Field(default=DEFAULT_CFG, ge=0.0, le=MAX_CFG, description="Classifier-free guidance scale")
    strength: float = Field(
        default=1.0, gt=0.0, le=1.0, description="With init.image: how far from it (1 = from noise; keep still holds)"
    )
    guidance_every: int = Field(
        default=2, ge=1, le=1000, description="Guides other than text pull on the predicted image every this many steps"
    )
    guidance_strength: float = Field(default=1.0, ge=0.0, le=100.0, description="How hard those guides pull")


Generator = Annotated[PixelsGenerator | FourierGenerator | DiffusionGenerator, Field(discriminator="kind")]


class Optimizer(Strict):
    kind: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=DEFAULT_LR, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    schedule: Literal["constant", "cosine", "linear"] = "cosine"
    warmup: float = Field(default=0.0, ge=0.0, le=0.5, description="Fraction of steps spent ramping lr up")


# ---- models -----------------------------------------------------------------------------


class ClipModel(Strict):
    name: str = Field(min_length=1, max_length=200)
    weights: str = Field(min_length=1, max_length=1024, description="open_clip tag, local file, or 'random'")


class DiffusionModel(Strict):
    weights: str = Field(
        min_length=1,
        max_length=1024,
        description="A diffusers folder, a .safetensors/.ckpt file (SD 1.x, 2.x, SDXL), or 'random:<config>' (tests)",
    )


class Models(Strict):
    clip: ClipModel | None = None
    diffusion: DiffusionModel | None = None
