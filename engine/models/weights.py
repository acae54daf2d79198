"""Finding CLIP weights: open_clip tags in the model cache, checkpoint files, or random; and fetching tags.

Weights never appear silently. A job only runs with weights already on this machine: `check_clip_available`
(no model build, no network) runs before any step, and a tag counts only once it is in the cache, where
`python -m engine fetch-models NAME:TAG` puts it. Offline, or when the hub cannot be reached, a fetch ends at once in
the same missing-weights error, naming where it looked and how to fix it.
"""

from __future__ import annotations

import difflib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name

from ..errors import SpecError
from ..process import offline
from .library import open_clip as _open_clip

open_clip = _open_clip()
oc_pretrained = open_clip.pretrained
get_model_config = open_clip.factory.get_model_config

RANDOM = "random"
TINY_MODEL = "regia-tiny"  # engine/model_configs/regia-tiny.json: for tests and benchmarks, with random weights
CONFIG_DIR = Path(__file__).resolve().parent.parent / "model_configs"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
EXAMPLE = "ViT-B-32:laion2b_s34b_b79k"
COMMON_MODELS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336", "RN50", "convnext_base_w", TINY_MODEL)
NAME_FIELD, WEIGHTS_FIELD = "models.clip.name", "models.clip.weights"
PROBE_TIMEOUT = 5.0  # seconds to decide that the hub cannot be reached, instead of the hub client's minute of retries
RANDOM_INIT_SEED = 0  # random weights are the same in every process, so tests and benchmarks repeat
WeightsKind = Literal["random", "tag", "file"]

if TINY_MODEL not in open_clip.list_models():  # importlib test runs may import this module twice
    open_clip.add_model_config(CONFIG_DIR)


# ---- where weights live ------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where tags are cached: REGIA_MODEL_CACHE, else the Hugging Face hub cache (HF_HUB_CACHE / HF_HOME)."""
    chosen = os.environ.get("REGIA_MODEL_CACHE")
    return Path(chosen).expanduser() if chosen else Path(hf_constants.HF_HUB_CACHE)


def checkpoint_path(weights: str) -> Path:
    """A weights path as the engine reads it: `~` expanded, relative to the current folder."""
    return Path(os.path.abspath(Path(weights).expanduser()))


def _hub_files(name: str, tag: str) -> tuple[str, list[str]]:
    """The hub repository of a tag and its candidate files, safetensors first (as open_clip tries them)."""
    repo_id, filename = os.path.split(oc_pretrained.get_pretrained_cfg(name, tag)["hf_hub"])
    filename = filename or "open_clip_pytorch_model.bin"
    safe = "open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin" else None
    if safe is None and filename.endswith((".bin", ".pth")):
        safe = filename[:-4] + ".safetensors"
    return repo_id, [safe, filename] if safe else [filename]


def cached_tag_file(name: str, tag: str) -> Path | None:
    """The tag's weights file in the cache, or None; reads the cache folder only."""
    repo_id, filenames = _hub_files(name, tag)
    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


# ---- what a spec may name ----------------------------------------------------------------------


def _needs_transformers(name: str) -> bool:
    text = (get_model_config(name) or {}).get("text_cfg", {})
    return "hf_model_name" in text or "hf_tokenizer_name" in text


def supported_models() -> list[str]:
    """open_clip's model names this engine can build offline (not those with a Hugging Face text tower)."""
    return [name for name in open_clip.list_models() if not _needs_transformers(name)]


def _names_hint(name: str) -> str:
    supported = supported_models()
    close = difflib.get_close_matches(name, supported, n=3, cutoff=0.6)
    common = [m for m in COMMON_MODELS if m in supported and m not in close]
    return ", ".join([*close, *common]) + f", ... ({len(supported)} in all)"


def _name_error(name: str, field_path: str = NAME_FIELD) -> SpecError | None:
    if name not in open_clip.list_models():
        return SpecError(field_path, "not an open_clip model name", value=name, allowed=_names_hint(name))
    if _needs_transformers(name):
        return SpecError(
            field_path,
            f"{name} has a Hugging Face text tower or tokenizer, which this engine does not load",
            value=name,
            allowed=_names_hint(name),
        )
    return None


def weights_kind(name: str, weights: str) -> WeightsKind | None:
    """random, a tag known for this model, a file path (by its look), or None: an unknown tag."""
    if weights == RANDOM:
        return "random"
    if oc_pretrained.is_pretrained_cfg(name, weights):
        return "tag"
    looks_like_path = any(sep in weights for sep in "/\\") or weights.startswith(("~", "."))
    return "file" if looks_like_path or weights.lower().endswith(CHECKPOINT_SUFFIXES) else None


def _weights_allowed(name: str) -> str:
    tags = oc_pretrained.list_pretrained_tags_by_model(name)
    shown = ", ".join(tags[:8]) + (", ..." if len(tags) > 8 else "")
    listed = f"a tag of {name} ({shown})" if tags else f"no tags exist for {name}"
    return f"{listed}; a checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)}); or 'random' (tests only)"


def _unknown_weights_error(name: str, weights: str, field_path: str = WEIGHTS_FIELD) -> SpecError:
    return SpecError(
        field_path,
        f"neither a pretrained tag of {name} nor a checkpoint file path",
        value=weights,
        allowed=_weights_allowed(name),
    )


def _how_to_get(name: str, tag: str | None) -> str:
    fetch = (
        f"on a machine that is online run `python -m engine fetch-models {name}:{tag}` and copy its cache folder "
        f"to {cache_dir()} here (or point REGIA_MODEL_CACHE at it), or "
        if tag
        else ""
    )
    return f"To get them: {fetch}download a checkpoint for {name} and set models.clip.weights to its path"


def missing_tag_error(name: str, tag: str, reason: str, field_path: str = WEIGHTS_FIELD) -> SpecError:
    """The one error for a tag that is not on this machine, whatever the cause."""
    repo_id, filenames = _hub_files(name, tag)
    folder = cache_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")
    return SpecError(
        field_path,
        f"CLIP weights {name} {tag!r} are missing: {reason}. Looked in the model cache for {' or '.join(filenames)} "
        f"under {folder}. {_how_to_get(name, tag)}",
        value=tag,
        allowed=f"a tag already in the cache, a checkpoint file path, or '{RANDOM}' (tests only)",
    )


def _file_error(name: str, weights: str, problem: str) -> SpecError:
    return SpecError(
        WEIGHTS_FIELD,
        f"CLIP weights for {name}: {problem}. {_how_to_get(name, None)}",
        value=weights,
        allowed=f"an existing open_clip checkpoint of {name} ({', '.join(CHECKPOINT_SUFFIXES)}), a cached tag, "
        f"or '{RANDOM}' (tests only)",
    )


def check_clip_available(name: str, weights: str, allow_download: bool = True) -> SpecError | None:
    """Why these weights cannot be used on this machine now, or None. No model build, no network."""
    problem = _name_error(name)
    if problem is not None:
        return problem
    kind = weights_kind(name, weights)
    if kind is None:
        return _unknown_weights_error(name, weights)
    if kind == "file":
        path = checkpoint_path(weights)
        return None if path.is_file() else _file_error(name, weights, f"there is no file {path}")
    if kind == "tag" and cached_tag_file(name, weights) is None:
        # Online, a job fetches an uncached tag when it loads it (load_clip -> fetch_clip), before any step; an
        # unreachable hub fails there, after one quick probe, with the same message. /health asks what is here now.
        if offline():
            return missing_tag_error(
                name, weights, "they are not in the model cache and this engine is offline (it never downloads)"
            )
        if not allow_download:
            return missing_tag_error(name, weights, "they are not in the cache yet (a job would download them)")
    return None


# ---- downloads ---------------------------------------------------------------------------------


def _hub_unreachable(endpoint: str) -> str | None:
    """Why the hub cannot be reached (one quick request, proxies honoured), or None when it answers at all."""
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError:  # it answered: reachable, whatever the status
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return str(reason) or type(exc).__name__


def fetch_clip(name: str, tag: str, field_path: str = WEIGHTS_FIELD) -> Path:
    """The tag's weights file, from the cache or downloaded into it; a SpecError when that cannot be."""
    problem = _name_error(name, NAME_FIELD if field_path == WEIGHTS_FIELD else field_path)
    if problem is not None:
        raise problem
    kind = weights_kind(name, tag)
    if kind in ("random", "file"):
        raise SpecError(field_path, "only pretrained tags are fetched", value=tag, allowed=_weights_allowed(name))
    if kind is None:
        raise _unknown_weights_error(name, tag, field_path)
    cached = cached_tag_file(name, tag)
    if cached is not None:
        return cached
    if offline():
        reason = "the engine is offline (REGIA_OFFLINE or HF_HUB_OFFLINE, or --offline) and they are not in the cache"
        raise missing_tag_error(name, tag, reason, field_path)
    endpoint = hf_constants.ENDPOINT
    unreachable = _hub_unreachable(endpoint)
    if unreachable is not None:
        reason = f"they are not in the cache and {endpoint} cannot be reached ({unreachable})"
        raise missing_tag_error(name, tag, reason, field_path)
    cfg = oc_pretrained.get_pretrained_cfg(name, tag)
    try:
        path = oc_pretrained.download_pretrained(cfg, cache_dir=str(cache_dir()))
    except Exception as exc:  # the hub client raises many kinds; each means the same to the user
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise missing_tag_error(name, tag, f"the download from {endpoint} failed ({first})", field_path) from None
    return Path(path)
