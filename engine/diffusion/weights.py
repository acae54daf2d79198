"""Finding and checking Stable Diffusion weights: a diffusers folder, one original-layout checkpoint file, or
`random:<config>`; which family and which shipped config they are; and why they cannot be used.

Nothing here builds a model, imports diffusers or touches the network, so a job (and /health) learns before any step
that its weights are unusable. A single file is judged by its keys and tensor shapes alone: a .safetensors file by its
header, a .ckpt (zip) by its pickle with the tensors memory-mapped, never read. Every config that can be matched is
shipped in `configs/` (taken from the models' diffusers folders), so no hub config is ever fetched.

Prediction type of a single file: files carry no marker of it (diffusers reads the `parameterization` of the original
yaml, which the engine does not take). It is `v_prediction` when the file has a `v_pred` key (as ComfyUI marks
v-prediction checkpoints) or its name says so (`vpred`, `v-pred`, `v_pred`); an SD 2.x file is also v-prediction when
its name has `768` (Stability's `768-v-ema`, `v2-1_768-ema-pruned`); otherwise `epsilon`. Rename the file to change it.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from ..errors import SpecError
from ..models.weights import checkpoint_path
from .ldm_keys import FAMILY_VARIANTS, describe_foreign, family_of, mismatches, missing_parts

FIELD = "models.diffusion.weights"
CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
RANDOM_PREFIX = "random:"
# Tiny ones for tests; full-size ones (random weights at the real size) for speed and memory benchmarks only.
RANDOM_CONFIGS: tuple[str, ...] = ("tiny-sd", "tiny-sdxl", "sd1", "sd2", "sd2-v", "sdxl")
FILE_SUFFIXES = (".safetensors", ".ckpt")
SUPPORTED = (
    "SD 1.x, SD 2.x (512 epsilon, 768 v-prediction) or SDXL base 1.0: a diffusers folder, or one .safetensors/.ckpt "
    "file in the original (CompVis/Stability) layout holding the UNet, the VAE and the text encoder(s)"
)
PIPELINES = {  # model_index.json classes whose components this engine loads
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusionXLImg2ImgPipeline",
}
MODEL_FILES = ("diffusion_pytorch_model", "model", "pytorch_model")
WeightsKind = Literal["random", "folder", "file"]


@dataclass(frozen=True)
class Findings:
    """What the weights are: the family, the shipped config a single file matched (None for a folder, whose own
    configs rule), the prediction type, and for folders the components that need the fp16 variant files."""

    kind: WeightsKind
    family: str
    config: str | None
    prediction_type: str
    fp16_variants: tuple[str, ...] = ()


# ---- shipped configs -----------------------------------------------------------------------------------------


@cache
def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def shipped_config(config: str, part: str) -> dict[str, Any]:
    """A shipped config as a fresh dict: part is unet, vae, text_encoder(_2), scheduler or tokenizer(_2)."""
    name = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}.get(part.removesuffix("_2"))
    return json.loads(json.dumps(_read_json(CONFIG_ROOT / config / part / (name or "config.json"))))


def config_family(config: str) -> str:
    return next(family for family, names in FAMILY_VARIANTS.items() if config in names)


# ---- what a spec may name ------------------------------------------------------------------------------------


def diffusion_kind(weights: str) -> WeightsKind | None:
    """random:<config>, a folder or a file (an existing path, else by its look), or None (not a path at all)."""
    if weights.startswith(RANDOM_PREFIX):
        return "random"
    path = checkpoint_path(weights)
    if path.is_dir():
        return "folder"
    if path.is_file() or path.suffix.lower() in FILE_SUFFIXES:
        return "file"
    looks_like_path = any(sep in weights for sep in "/\\") or weights.startswith(("~", "."))
    return "folder" if looks_like_path else None


def reason(exc: BaseException, limit: int = 240) -> str:
    """An exception in one line, for a message: its type and the start of its text."""
    text = " ".join(str(exc).split())[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _error(weights: str, message: str, allowed: str = SUPPORTED, field: str = FIELD) -> SpecError:
    return SpecError(field, message, value=weights, allowed=allowed)


def _random_config(weights: str, field: str) -> str:
    config = weights[len(RANDOM_PREFIX) :]
    if config not in RANDOM_CONFIGS:
        known = ", ".join(RANDOM_PREFIX + name for name in RANDOM_CONFIGS)
        raise _error(weights, f"no random config {config!r}", allowed=known, field=field)
    return config


def _missing_path(weights: str, path: Path, kind: str, field: str) -> SpecError:
    hub = "" if weights.startswith(("/", "~", ".")) else " (the engine never downloads: a hub id is not fetched)"
    return _error(
        weights,
        f"there is no {kind} {path}{hub}. Download the model and set {field} to its diffusers folder or its "
        f".safetensors/.ckpt file",
        field=field,
    )


def inspect_weights(weights: str, field: str = FIELD) -> Findings:
    """What the weights are, cheaply (no model build, no network); a SpecError naming `field` when unusable."""
    kind = diffusion_kind(weights)
    if kind is None:
        raise _error(
            weights,
            "neither random:<config> nor the path of a diffusers folder or a checkpoint file",
            allowed=f"{SUPPORTED}; or random:<config> (tests only: {', '.join(RANDOM_CONFIGS)})",
            field=field,
        )
    if kind == "random":
        config = _random_config(weights, field)
        scheduler = shipped_config(config, "scheduler")
        return Findings("random", config_family(config), config, scheduler.get("prediction_type", "epsilon"))
    path = checkpoint_path(weights)
    if kind == "folder":
        if not path.is_dir():
            raise _missing_path(weights, path, "folder", field)
        return _inspect_folder(weights, path, field)
    if not path.is_file():
        raise _missing_path(weights, path, "file", field)
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise _error(
            weights,
            f"{path} is a {path.suffix or 'suffix-less'} file; a single checkpoint is .safetensors or .ckpt",
            field=field,
        )
    return _inspect_file(weights, path, field)


def check_diffusion_available(weights: str, field: str = FIELD) -> SpecError | None:
    """Why these weights cannot be used on this machine now, or None. No model build, no network; a single file's
    header (or a .ckpt's pickle, tensors memory-mapped) is all that is read."""
    try:
        inspect_weights(weights, field)
    except SpecError as problem:
        return problem
    return None


# ---- single files --------------------------------------------------------------------------------------------


class Unreadable(Exception):
    """A checkpoint file that cannot be read (truncated, corrupt, or not what its suffix says)."""


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from a .safetensors header, after checking the header covers the file."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            raise Unreadable(f"only {size} bytes, shorter than a safetensors header")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8 or length > 100_000_000:
            raise Unreadable(f"its header claims {length} bytes, the file has {size} (truncated, or not safetensors)")
        try:
            header = json.loads(stream.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Unreadable(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise Unreadable("its header is not a JSON object")
    shapes, end = {}, 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            shapes[key] = tuple(int(n) for n in info["shape"])
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise Unreadable(f"its header entry {key!r} has no shape or offsets") from None
    if end > size - 8 - length:
        raise Unreadable(f"its tensors need {end} bytes of data, the file holds {size - 8 - length} (truncated)")
    return shapes


SMALL_PICKLE = 64 << 20  # an old-style (non-zip) .ckpt this small is read whole at check time


def _check_magic(path: Path) -> bool:
    """Whether the file is a zip (torch.save's format); raises Unreadable when it is not a pickle either."""
    with path.open("rb") as stream:
        head = stream.read(4)
    if head == b"PK\x03\x04":
        return True
    if head[:1] != b"\x80":
        raise Unreadable("it is not a torch checkpoint (neither a zip archive nor a pickle)")
    return False


def read_ckpt(path: Path, mmap: bool = True) -> dict[str, Any]:
    """A .ckpt's state dict via torch.load(weights_only=True), so no code in the file runs; tensors memory-mapped
    when the file is a zip and `mmap`. Raises Unreadable."""
    import pickle

    import torch

    is_zip = _check_magic(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise Unreadable(
            "it holds Python objects besides tensors, which weights-only loading refuses so that no code in the "
            f"file runs ({first}); convert it to .safetensors with a tool you trust"
        ) from None
    except Exception as exc:  # zip, EOF and storage errors: all a damaged file to the user
        raise Unreadable(f"torch cannot read it ({reason(exc, 200)}): truncated or corrupt?") from None
    while isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise Unreadable(f"it holds a {type(loaded).__name__}, not a state dict")
    return loaded


def file_shapes(path: Path) -> dict[str, tuple[int, ...]] | None:
    """Key -> shape of a checkpoint without reading its tensors; None for a big old-style .ckpt (a plain pickle
    cannot be memory-mapped, so it is judged when loaded)."""
    if path.suffix.lower() == ".safetensors":
        return safetensors_shapes(path)
    if not _check_magic(path) and path.stat().st_size >= SMALL_PICKLE:
        return None
    state = read_ckpt(path)
    return {key: tuple(value.shape) for key, value in state.items() if hasattr(value, "shape")}


def _prediction(path: Path, keys: set[str], family: str) -> str:
    name = path.name.lower()
    if "v_pred" in keys or re.search(r"v[-_]?pred", name):
        return "v_prediction"
    return "v_prediction" if family == "sd2" and "768" in name else "epsilon"


def detect_file(weights: str, path: Path, shapes: dict[str, tuple[int, ...]], field: str = FIELD) -> Findings:
    """The family and shipped config a single file's keys and shapes match; a SpecError saying what it is instead."""
    family = family_of(shapes)
    if family is None:
        found = describe_foreign(shapes)
        raise _error(weights, f"{path}: unsupported model family: found {found}", field=field)
    gaps = missing_parts(family, shapes)
    if gaps:
        raise _error(weights, f"{path}: an incomplete {family} checkpoint: {gaps}", field=field)
    prediction = _prediction(path, set(shapes), family)
    candidates = {name: mismatches(name, shapes, shipped_config) for name in FAMILY_VARIANTS[family]}
    matching = [name for name, wrong in candidates.items() if not wrong]
    if not matching:
        closest = min(candidates, key=lambda name: len(candidates[name]))
        listed = "; ".join(candidates[closest][:4])
        raise _error(
            weights, f"{path}: its shapes match no shipped {family} config (closest {closest!r}: {listed})", field=field
        )
    config = "sd2-v" if family == "sd2" and prediction == "v_prediction" else matching[0]
    return Findings("file", family, config, prediction)


def _inspect_file(weights: str, path: Path, field: str) -> Findings:
    try:
        shapes = file_shapes(path)
    except Unreadable as exc:
        raise _error(weights, f"{path} cannot be read: {exc}", field=field) from None
    except OSError as exc:
        raise _error(weights, f"{path} cannot be read: {exc.strerror or exc}", field=field) from None
    if shapes is None:  # an old-style pickle: judged at load
        return Findings("file", "unknown", None, "epsilon")
    return detect_file(weights, path, shapes, field)


# ---- diffusers folders ---------------------------------------------------------------------------------------


def _weights_file(folder: Path) -> tuple[Path | None, bool]:
    """A component's weights file (or shard index), and whether it is only there as the fp16 variant."""
    for fp16 in (False, True):
        for stem in MODEL_FILES:
            for suffix in (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json"):
                name = f"{stem}.fp16{suffix}" if fp16 else f"{stem}{suffix}"
                if (folder / name).is_file():
                    return folder / name, fp16
    return None, False


def _component_problem(path: Path, part: str) -> str | None:
    folder = path / part
    if not folder.is_dir():
        return f"it has no {part}/ folder"
    if part.startswith("tokenizer"):
        has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
        return None if has_bpe or (folder / "tokenizer.json").is_file() else f"{part}/ has no vocab.json + merges.txt"
    config = "scheduler_config.json" if part == "scheduler" else "config.json"
    if not (folder / config).is_file():
        return f"{part}/ has no {config}"
    if part == "scheduler":
        return None
    found, _ = _weights_file(folder)
    if found is None:
        return f"{part}/ has no weights file (diffusion_pytorch_model.safetensors, model.safetensors or .bin)"
    if found.name.endswith(".safetensors"):
        try:
            safetensors_shapes(found)
        except Unreadable as exc:
            return f"{part}/{found.name} cannot be read: {exc}"
    return None


def _folder_json(weights: str, path: Path, part: str, field: str) -> dict[str, Any]:
    name = "scheduler_config.json" if part == "scheduler" else "config.json"
    file = path / part / name if part else path / "model_index.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _error(weights, f"{file} cannot be read as JSON ({exc})", field=field) from None
    if not isinstance(data, dict):
        raise _error(weights, f"{file} is not a JSON object", field=field)
    return data


def _inspect_folder(weights: str, path: Path, field: str) -> Findings:
    if not (path / "model_index.json").is_file():
        raise _error(weights, f"{path} is not a diffusers folder: it has no model_index.json", field=field)
    index = _folder_json(weights, path, "", field)
    pipeline = index.get("_class_name")
    if pipeline not in PIPELINES:
        raise _error(weights, f"{path}: unsupported model family: model_index.json names {pipeline!r}", field=field)
    xl = "text_encoder_2" in index
    parts = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] + (["text_encoder_2", "tokenizer_2"] * xl)
    for part in parts:
        problem = _component_problem(path, part)
        if problem:
            raise _error(weights, f"{path} is not a complete diffusers folder: {problem}", field=field)
    unet = _folder_json(weights, path, "unet", field)
    texts = [_folder_json(weights, path, part, field) for part in parts if part.startswith("text_encoder")]
    width = sum(int(text.get("hidden_size", 0)) for text in texts)
    if unet.get("in_channels", 4) != 4:
        raise _error(
            weights,
            f"{path}: unsupported model family: a UNet of {unet.get('in_channels')} input channels "
            "(inpainting or image-conditioned), where text-to-image models have 4",
            field=field,
        )
    if unet.get("cross_attention_dim") != width:
        raise _error(
            weights,
            f"{path}: the UNet's cross_attention_dim {unet.get('cross_attention_dim')} does not match its "
            f"text encoders' width {width}",
            field=field,
        )
    family = "sdxl" if xl else ("sd2" if texts[0].get("hidden_act") == "gelu" else "sd1")
    scheduler = _folder_json(weights, path, "scheduler", field)
    fp16 = tuple(part for part in parts if _weights_file(path / part)[1])
    return Findings("folder", family, None, str(scheduler.get("prediction_type", "epsilon")), fp16)
