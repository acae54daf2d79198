"""Stable Diffusion models for the `diffusion` generator: `weights` finds and checks them (a diffusers folder, one
original-layout checkpoint, or random:<config>), `loading` builds them. Checking imports neither diffusers nor
transformers (seconds of import time the engine's start-up and /health do without); loading does, on first use."""

from __future__ import annotations

from typing import Any

from .weights import RANDOM_CONFIGS, check_diffusion_available, diffusion_kind

_LOADING = (
    "DiffusionBundle",
    "clear_diffusion",
    "diffusion_build_count",
    "load_diffusion",
    "loaded_diffusion",
    "pick_dtype",
)
_MEMORY = ("MemoryPlan", "apply_memory_savers", "plan_memory_savers")

__all__ = ["RANDOM_CONFIGS", "check_diffusion_available", "diffusion_kind", *_LOADING, *_MEMORY]


def __getattr__(name: str) -> Any:
    if name in _LOADING:
        from . import loading

        return getattr(loading, name)
    if name in _MEMORY:
        from . import memory

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
