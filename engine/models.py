"""CLIP models for the text and image guides: open_clip weights by tag, from a checkpoint file, or random.

Weights never appear silently. A job only runs with weights already on this machine: `check_clip_available`
(no model build, no network) runs before any step, and a tag counts only once it is in the cache, where
`python -m engine fetch-models NAME:TAG` puts it. `load_clip` downloads only when online; offline, or when the
hub cannot be reached, it ends at once in the same missing-weights error, naming where it looked and how to fix it.
Random weights are built only when the spec says `"weights": "random"` (tests and benchmarks).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name
from open_clip import pretrained as oc_pretrained
from open_clip.factory import get_model_config

from .errors import SpecError
from .runtime import offline

RANDOM = "random"
TINY_MODEL = "regia-tiny"  # engine/model_configs/regia-tiny.json: for tests and benchmarks, with random weights
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
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


# ---- building models ---------------------------------------------------------------------------


class _DropOpenClipLogs(logging.Filter):
    """open_clip logs through the root logger that it builds random weights; here they are replaced at once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}open_clip{os.sep}" not in record.pathname


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    root, quiet = logging.getLogger(), _DropOpenClipLogs()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _build(name: str, pretrained_cfg: dict[str, Any]) -> torch.nn.Module:
    """The architecture with fixed-seed random weights, preprocessing as the tag was trained with."""
    preprocess = {
        key: pretrained_cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in pretrained_cfg
    }
    with torch.random.fork_rng(devices=[]), _quiet_open_clip():
        torch.manual_seed(RANDOM_INIT_SEED)
        return open_clip.create_model(
            name,
            pretrained=None,
            pretrained_image=False,
            pretrained_text=False,
            force_quick_gelu=bool(pretrained_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=preprocess or None,
        )


def _load_weights(model: torch.nn.Module, path: Path) -> str | None:
    """Load a checkpoint into the model; the reason it cannot be loaded, or None."""
    try:
        with _quiet_open_clip():
            open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as exc:  # a corrupt pickle, a safetensors header, wrong keys or shapes: all the same to the user
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:240]}" if text else type(exc).__name__
    return None


def _model_for(name: str, weights: str) -> torch.nn.Module:
    problem = _name_error(name)
    if problem is not None:
        raise problem
    kind = weights_kind(name, weights)
    if kind is None:
        raise _unknown_weights_error(name, weights)
    if kind == "random":
        return _build(name, {})
    if kind == "file":
        path = checkpoint_path(weights)
        if not path.is_file():
            raise _file_error(name, weights, f"there is no file {path}")
        model = _build(name, {})
        failed = _load_weights(model, path)
        if failed:
            raise _file_error(name, weights, f"{path} is not an open_clip checkpoint of {name} ({failed})")
        return model
    path = fetch_clip(name, weights)
    model = _build(name, oc_pretrained.get_pretrained_cfg(name, weights))
    failed = _load_weights(model, path)
    if failed:
        raise missing_tag_error(name, weights, f"the cached file {path} cannot be loaded ({failed}); fetch it again")
    return model


def _square_side(size: Any) -> int:
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if sides[0] != sides[1]:
        raise ValueError(f"the vision tower's input is {sides[0]}x{sides[1]}: only square inputs are supported")
    return int(sides[0])


# ---- the loaded model --------------------------------------------------------------------------

_TEXT_CACHE: dict[tuple[str, str, str], torch.Tensor] = {}


@dataclass(eq=False)
class ClipBundle:
    """A loaded CLIP model, frozen, with its input size and normalisation and cached text embeddings."""

    name: str
    weights: str
    model: torch.nn.Module
    device: torch.device
    image_size: int
    mean: torch.Tensor  # (1, 3, 1, 1) on device
    std: torch.Tensor
    tokenizer: Any
    image_forwards: int = 0  # encode_images calls: the guides promise one per step
    texts_encoded: int = 0  # prompts run through the text tower (each once per process)
    _channels_last: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.weights}"

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1]) if hasattr(self.model, "text_projection") else -1

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) in [0, 1] -> (N, D) unit vectors; differentiable with respect to the pixels."""
        side = self.image_size
        if pixels.ndim != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[-2:]) != (side, side):
            raise ValueError(f"encode_images takes (N, 3, {side}, {side}) pixels, got {tuple(pixels.shape)}")
        self.image_forwards += 1
        x = (pixels - self.mean) / self.std
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.model.encode_image(x).float(), dim=-1)

    def encode_texts(self, prompts: list[str]) -> torch.Tensor:
        """(P, D) unit vectors, no grad; each prompt runs through the text tower once per process."""
        todo = [p for p in dict.fromkeys(prompts) if (self.name, self.weights, p) not in _TEXT_CACHE]
        if todo:
            # Full precision whatever autocast the caller runs under: cached values must not depend on it.
            with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
                tokens = self.tokenizer(todo).to(self.device)
                features = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            for prompt, row in zip(todo, features, strict=True):
                _TEXT_CACHE[(self.name, self.weights, prompt)] = row
            self.texts_encoded += len(todo)
        if not prompts:
            return torch.zeros(0, self.embed_dim, device=self.device)
        return torch.stack([_TEXT_CACHE[(self.name, self.weights, p)].to(self.device) for p in prompts])


def _bundle(name: str, weights: str, model: torch.nn.Module, device: torch.device) -> ClipBundle:
    model = model.to(device).eval()
    model.requires_grad_(False)
    visual = model.visual
    # Conv towers run faster channels-last on CUDA tensor cores; the ViT patch conv does not care.
    channels_last = device.type == "cuda" and type(visual).__name__ in ("ModifiedResNet", "TimmModel")
    if channels_last:
        visual.to(memory_format=torch.channels_last)
    preprocess = open_clip.get_model_preprocess_cfg(model)
    return ClipBundle(
        name=name,
        weights=weights,
        model=model,
        device=device,
        image_size=_square_side(preprocess.get("size", visual.image_size)),
        mean=torch.tensor(preprocess["mean"], dtype=torch.float32, device=device).view(1, 3, 1, 1),
        std=torch.tensor(preprocess["std"], dtype=torch.float32, device=device).view(1, 3, 1, 1),
        tokenizer=open_clip.get_tokenizer(name),
        _channels_last=channels_last,
    )


_BUNDLES: dict[tuple[str, str, torch.device], ClipBundle] = {}
_LOCK = threading.Lock()
builds = 0  # models built in this process: tests check that a second load_clip builds nothing


def load_clip(name: str, weights: str, device: torch.device) -> ClipBundle:
    """The model, built once per (name, weights, device) in this process. SpecError when it cannot be had."""
    global builds
    key = (name, weights, device)
    with _LOCK:  # the server's worker and a second caller must not build the same model twice
        if key not in _BUNDLES:
            model = _model_for(name, weights)
            builds += 1
            _BUNDLES[key] = _bundle(name, weights, model, device)
        return _BUNDLES[key]


def loaded_models() -> list[str]:
    """NAME:WEIGHTS of every model loaded in this process, in load order."""
    keys = list(_BUNDLES)  # one atomic copy: the worker thread may be adding to it
    return list(dict.fromkeys(f"{name}:{weights}" for name, weights, _ in keys))


def clear_loaded() -> None:
    """Forget every loaded model and cached text embedding (frees their memory)."""
    with _LOCK:
        _BUNDLES.clear()
        _TEXT_CACHE.clear()
