"""Memory savers for a loaded diffusion bundle on CUDA, chosen from the card's free memory and the canvas.

What costs memory beyond the weights: the VAE decode, whose activations grow with the output's pixels (about 1.5 k
values per pixel in its last, full-resolution blocks: 0.8 GB at 512x512 in 16-bit, 13 GB at 2048x2048), and attention.
- VAE tiling decodes in overlapping tiles (diffusers blends the seams): on when a whole decode would take more than
  half the free memory.
- VAE slicing decodes a batch one image at a time: on when a batch of decodes would.
- Attention slicing computes attention a few heads at a time: on when less than `LOW_FREE_BYTES` is free. With
  PyTorch's fused attention (SDPA) it rarely helps, so it is a last resort; and it replaces the UNet's attention
  processors, so it is applied only while they are diffusers' own. A sampler with processors of its own reads
  `plan.attention_slicing` and slices in them. Call this after installing processors, once per job: the bundle is
  shared by every job of the process, and each call sets every saver on or off.
On MPS and the CPU nothing is changed (their memory is the machine's; savers only slow them down).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

DECODE_VALUES_PER_PIXEL = 1536  # live activations per output pixel in the VAE decoder's full-resolution blocks
LOW_FREE_BYTES = 2 << 30  # below this much free memory (after the weights), attention is sliced
STOCK_PROCESSORS = {"AttnProcessor", "AttnProcessor2_0", "SlicedAttnProcessor"}


@dataclass(frozen=True)
class MemoryPlan:
    """Which savers to use, and why (for the job's log)."""

    vae_slicing: bool
    vae_tiling: bool
    attention_slicing: bool
    reason: str


def plan_memory_savers(
    free_bytes: int, width: int, height: int, bytes_per_value: int = 2, batch: int = 1
) -> MemoryPlan:
    """The savers for a `width` x `height` canvas given `free_bytes` of device memory with the weights loaded."""
    decode = width * height * DECODE_VALUES_PER_PIXEL * bytes_per_value
    tiling = decode > free_bytes // 2
    slicing = batch > 1 and decode * batch > free_bytes // 2
    attention = free_bytes < LOW_FREE_BYTES
    reason = f"{free_bytes / 2**30:.1f} GiB free; a {width}x{height} decode takes about {decode / 2**30:.1f} GiB" + (
        f" per image, {batch} images" if batch > 1 else ""
    )
    return MemoryPlan(vae_slicing=slicing or tiling, vae_tiling=tiling, attention_slicing=attention, reason=reason)


def _stock_attention(unet: Any) -> bool:
    return all(type(processor).__name__ in STOCK_PROCESSORS for processor in unet.attn_processors.values())


def apply_memory_savers(bundle: Any, width: int, height: int, batch: int = 1, tileable: bool = False) -> MemoryPlan:
    """Choose the savers from the device's free memory now and set them on the bundle; the plan says which. A
    tileable canvas is never decoded in tiles: each tile would wrap round on itself rather than on the canvas."""
    if bundle.device.type != "cuda":
        return MemoryPlan(False, False, False, f"{bundle.device.type}: no savers (the machine's memory)")
    free, _total = torch.cuda.mem_get_info(bundle.device)
    plan = plan_memory_savers(free, width, height, bundle.vae.dtype.itemsize, batch)
    if tileable and plan.vae_tiling:
        plan = replace(plan, vae_tiling=False, reason=f"{plan.reason}; tileable, so no VAE tiling")
    vae = bundle.vae
    vae.enable_tiling() if plan.vae_tiling else vae.disable_tiling()
    vae.enable_slicing() if plan.vae_slicing else vae.disable_slicing()
    if _stock_attention(bundle.unet):
        bundle.unet.set_attention_slice("auto" if plan.attention_slicing else None)
    return plan
