"""CLIP models for the text and image guides: `weights` finds them (cache, checkpoint files, random) and fetches tags;
`clip` builds and loads them. What the rest of the engine uses is here."""

from .clip import ClipBundle, build_count, clear_loaded, load_clip, loaded_models
from .weights import (
    RANDOM,
    TINY_MODEL,
    cache_dir,
    check_clip_available,
    fetch_clip,
    missing_tag_error,
    supported_models,
    weights_kind,
)

__all__ = [
    "RANDOM",
    "TINY_MODEL",
    "ClipBundle",
    "build_count",
    "cache_dir",
    "check_clip_available",
    "clear_loaded",
    "fetch_clip",
    "load_clip",
    "loaded_models",
    "missing_tag_error",
    "supported_models",
    "weights_kind",
]
