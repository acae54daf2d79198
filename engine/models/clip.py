"""Building CLIP models: the architecture with its weights (a cached tag, a checkpoint file, or fixed-seed random
weights when the spec asks for them), frozen, once per process and device, with cached text embeddings."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .library import with_timm
from .weights import (
    RANDOM_INIT_SEED,
    _file_error,
    _name_error,
    _unknown_weights_error,
    checkpoint_path,
    fetch_clip,
    get_model_config,
    missing_tag_error,
    oc_pretrained,
    open_clip,
    weights_kind,
)

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


@contextlib.contextmanager
def _without_random_init() -> Iterator[None]:
    """Parameters are made but not drawn at random: torch.nn.init's functions leave their tensor as it is.

    For weights from a checkpoint, which the strict load then writes into every parameter and persistent buffer,
    drawing them first is wasted: 1.6 of 1.9 s of building ViT-B-32 on this 2-core CPU (bench/startup.py), more for
    larger models. Buffers computed by code (the text tower's causal mask) are made as usual. transformers builds
    models to load the same way. The engine builds one model at a time, on its worker thread."""
    init = torch.nn.init
    names = [name for name in vars(init) if name.endswith("_") and not name.startswith("_")]
    saved = {name: getattr(init, name) for name in names}

    def keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    for name in names:
        setattr(init, name, keep)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


def _build(name: str, pretrained_cfg: dict[str, Any], load_into: torch.device | None = None) -> torch.nn.Module:
    """The architecture, preprocessing as the tag was trained with: with fixed-seed random weights on the CPU, or,
    with `load_into`, made on that device without drawing any, for a checkpoint to fill."""
    preprocess = {
        key: pretrained_cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in pretrained_cfg
    }
    if "timm_model_name" in (get_model_config(name) or {}).get("vision_cfg", {}):
        with_timm()
    options: dict[str, Any] = {
        "pretrained": None,
        "pretrained_image": False,
        "pretrained_text": False,
        "force_quick_gelu": bool(pretrained_cfg.get("quick_gelu", False)),
        "force_preprocess_cfg": preprocess or None,
    }
    if load_into is not None:
        with _without_random_init(), torch.device(load_into), _quiet_open_clip():
            return open_clip.create_model(name, device=load_into, **options)
    with torch.random.fork_rng(devices=[]), _quiet_open_clip():
        torch.manual_seed(RANDOM_INIT_SEED)
        return open_clip.create_model(name, **options)


def _load_weights(model: torch.nn.Module, path: Path, device: torch.device) -> str | None:
    """Load a checkpoint into the model, read straight onto `device`; the reason it cannot be loaded, or None."""
    try:
        with _quiet_open_clip():
            open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True, device=str(device))
    except Exception as exc:  # a corrupt pickle, a safetensors header, wrong keys or shapes: all the same to the user
        text = " ".join(str(exc).split())
        return f"{type(exc).__name__}: {text[:240]}" if text else type(exc).__name__
    return None


def _model_for(name: str, weights: str, device: torch.device) -> torch.nn.Module:
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
        model = _build(name, {}, load_into=device)
        failed = _load_weights(model, path, device)
        if failed:
            raise _file_error(name, weights, f"{path} is not an open_clip checkpoint of {name} ({failed})")
        return model
    path = fetch_clip(name, weights)
    model = _build(name, oc_pretrained.get_pretrained_cfg(name, weights), load_into=device)
    failed = _load_weights(model, path, device)
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
        if not torch.compiler.is_compiling():  # a count changing under torch.compile would make it recompile
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
_builds = 0  # models built in this process: tests check that a second load_clip builds nothing


def build_count() -> int:
    """How many models this process has built (a second load_clip of the same model builds none)."""
    return _builds


def load_clip(name: str, weights: str, device: torch.device) -> ClipBundle:
    """The model, built once per (name, weights, device) in this process. SpecError when it cannot be had."""
    global _builds
    key = (name, weights, device)
    with _LOCK:  # the server's worker and a second caller must not build the same model twice
        if key not in _BUNDLES:
            model = _model_for(name, weights, device)
            _builds += 1
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
