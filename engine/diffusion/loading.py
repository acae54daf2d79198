"""Building Stable Diffusion components (UNet, VAE, text encoders, tokenizers, scheduler config) from the weights
`weights.py` found: a diffusers folder, one original-layout checkpoint, or fixed-seed random weights; frozen, on the
device, once per process.

A single file is converted with diffusers' own converters (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint`, `convert_open_clip_checkpoint`) into models built from the shipped config (on the meta
device, so no memory goes to an init that is overwritten), and every tensor must fit: a missing, extra or misshapen
tensor is an error naming it, never a silently random part. Nothing reaches the network: configs are shipped, folders
load with `local_files_only`, tokenizers come from `tokenizers.py`.

dtype: on CUDA bfloat16 where the card has it (Ampere and later), else float16; float32 on MPS and CPU. bfloat16 has
float32's range, so SD 2.x attention and the SDXL VAE, which overflow float16, need no upcasting. In float16 a VAE
whose config says `force_upcast` (SDXL's) stays float32: decode with `latents.to(bundle.vae.dtype)`.

Conditioning, per family (for the sampler): sd1 and sd2 use the text encoder's `last_hidden_state` (SD 2.x's config has
23 layers: the penultimate of OpenCLIP's 24); sdxl concatenates both encoders' `hidden_states[-2]` (run them with
`output_hidden_states=True`) and adds the second encoder's `text_embeds` as `added_cond_kwargs["text_embeds"]` with
`time_ids` (original size, crop top-left, target size).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import SpecError
from ..models.library import importing_optional
from ..models.weights import checkpoint_path
from . import weights as found
from .ldm_keys import TEXT_PARTS, TEXT_PREFIXES, UNET, VAE
from .tokenizers import END, clip_tokenizer, with_pad

with importing_optional():  # diffusers looks for transformers: never while open_clip's import hides it
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as ldm
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

RANDOM_INIT_SEED = 0  # random weights are the same in every process, so tests and benchmarks repeat


@dataclass(eq=False)
class DiffusionBundle:
    """A loaded Stable Diffusion model, frozen, on one device. `family` is sd1, sd2 or sdxl (tiny test models are
    sd1 or sdxl); `config` names the shipped config a single file or random weights matched ("" for a folder)."""

    family: str
    label: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoders: list[torch.nn.Module]
    tokenizers: list[CLIPTokenizer]
    scheduler_config: dict[str, Any]
    prediction_type: str
    vae_scale_factor: int
    device: torch.device
    dtype: torch.dtype
    config: str = ""


@dataclass
class _Parts:
    """Components as built, on the CPU, before they are frozen and moved."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoders: list[torch.nn.Module]
    tokenizers: list[CLIPTokenizer]
    scheduler_config: dict[str, Any]
    findings: found.Findings
    label: str


def pick_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA cards that have it, else float16 on CUDA; float32 on MPS and the CPU."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _fail(weights: str, message: str) -> SpecError:
    return found._error(weights, message)


# ---- building from shipped configs ----------------------------------------------------------------------------


def _text_model(config: dict[str, Any]) -> torch.nn.Module:
    text_config = CLIPTextConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")})
    if "CLIPTextModelWithProjection" in config.get("architectures", []):
        return CLIPTextModelWithProjection(text_config)
    return CLIPTextModel(text_config)


def _shipped_models(config: str) -> tuple[UNet2DConditionModel, AutoencoderKL, list[torch.nn.Module]]:
    """The config's models, initialised by their libraries (on the meta device when a context says so)."""
    unet = UNet2DConditionModel.from_config(found.shipped_config(config, "unet"))
    vae = AutoencoderKL.from_config(found.shipped_config(config, "vae"))
    texts = [_text_model(found.shipped_config(config, part)) for part in _text_parts(config)]
    return unet, vae, texts


def _text_parts(config: str) -> tuple[str, ...]:
    return TEXT_PARTS[: len(TEXT_PREFIXES[found.config_family(config)])]


def _shipped_tokenizers(config: str) -> list[CLIPTokenizer]:
    parts = [part.replace("text_encoder", "tokenizer") for part in _text_parts(config)]
    return [clip_tokenizer(found.shipped_config(config, part).get("pad_token", END)) for part in parts]


def _scheduler(config: str, prediction_type: str) -> dict[str, Any]:
    scheduler = found.shipped_config(config, "scheduler")
    scheduler["prediction_type"] = prediction_type
    return scheduler


def _random_parts(weights: str, findings: found.Findings) -> _Parts:
    config = findings.config or ""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        unet, vae, texts = _shipped_models(config)
    scheduler = _scheduler(config, findings.prediction_type)
    return _Parts(unet, vae, texts, _shipped_tokenizers(config), scheduler, findings, weights)


# ---- single files ---------------------------------------------------------------------------------------------


def _read_state(weights: str, path: Path, family: str) -> dict[str, torch.Tensor]:
    """The file's tensors that belong to the model (EMA copies and training state left out)."""
    prefixes = (UNET, VAE, *(prefix for prefix, _ in TEXT_PREFIXES.get(family, [])))
    keep = (lambda key: key.startswith(prefixes) or key == "v_pred") if family in TEXT_PREFIXES else (lambda _: True)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as stream:
                return {key: stream.get_tensor(key) for key in stream.keys() if keep(key)}  # noqa: SIM118
        state = found.read_ckpt(path)
    except found.Unreadable as exc:
        raise _fail(weights, f"{path} cannot be read: {exc}") from None
    except Exception as exc:  # safetensors and OS errors on a damaged payload
        raise _fail(weights, f"{path} cannot be read ({found.reason(exc)})") from None
    return {key: value for key, value in state.items() if isinstance(value, torch.Tensor) and keep(key)}


def _fit(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, fail: Any) -> None:
    """Load `state` into a meta-device model, every tensor accounted for; then the position ids (a buffer no
    checkpoint holds) are made again."""
    state = {key: value for key, value in state.items() if not key.endswith("position_ids")}
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    extra = [key for key in state if key not in expected]
    wrong = [
        f"{key} is {tuple(state[key].shape)}, the config needs {tuple(shape.shape)}"
        for key, shape in expected.items()
        if key in state and state[key].shape != shape.shape
    ]
    if missing or extra or wrong:
        listed = [*wrong[:3], *(f"missing {key}" for key in missing[:3]), *(f"unexpected {key}" for key in extra[:3])]
        raise fail(
            f"its {what} does not fit the config ({len(missing)} missing, {len(extra)} unexpected, "
            f"{len(wrong)} misshapen tensors: {'; '.join(listed)})"
        )
    # Copies: a tensor read from the file may sit in its memory map at any alignment, and CPU kernels then take
    # other paths (results differ in the last bits from the same weights loaded any other way).
    model.load_state_dict({key: value.clone() for key, value in state.items()}, strict=True, assign=True)
    for name, buffer in list(model.named_buffers()):
        if buffer.is_meta:
            owner, _, leaf = name.rpartition(".")
            if leaf != "position_ids":
                raise RuntimeError(f"{type(model).__name__}.{name} has no value after loading")
            value = torch.arange(buffer.shape[-1]).expand(buffer.shape)
            model.get_submodule(owner).register_buffer(leaf, value, persistent=False)


def _convert_text(state: dict[str, torch.Tensor], prefix: str, kind: str, model: torch.nn.Module) -> dict:
    if kind == "openai":
        converted = ldm.convert_ldm_clip_checkpoint({k: v for k, v in state.items() if k.startswith(prefix)})
    else:
        converted = ldm.convert_open_clip_checkpoint(model, state, prefix=prefix)
    if not hasattr(model, "text_model"):  # transformers' CLIPTextModel has no text_model level any more
        converted = {key.removeprefix("text_model."): value for key, value in converted.items()}
    return converted


def convert_checkpoint(
    state: dict[str, torch.Tensor], findings: found.Findings, fail: Any
) -> tuple[UNet2DConditionModel, AutoencoderKL, list[torch.nn.Module]]:
    """The models of an original-layout state dict, built from the config it matched (`fail(message)` makes the
    error). Meta tensors in give meta models out, which is how the tests check full-size layouts for free."""
    config = findings.config or ""
    with torch.device("meta"):
        unet, vae, texts = _shipped_models(config)
    try:
        unet_state = ldm.convert_ldm_unet_checkpoint(state, dict(unet.config))
        vae_state = ldm.convert_ldm_vae_checkpoint(state, dict(vae.config))
        text_states = [
            _convert_text(state, prefix, kind, model)
            for (prefix, kind), model in zip(TEXT_PREFIXES[findings.family], texts, strict=True)
        ]
    except (KeyError, IndexError, RuntimeError, ValueError) as exc:
        raise fail(f"its keys do not follow the original layout ({type(exc).__name__}: {exc})") from None
    _fit(unet, unet_state, "UNet", fail)
    _fit(vae, vae_state, "VAE", fail)
    for part, model, text_state in zip(_text_parts(config), texts, text_states, strict=True):
        _fit(model, text_state, part, fail)
    return unet, vae, texts


def _file_parts(weights: str, path: Path, findings: found.Findings) -> _Parts:
    state = _read_state(weights, path, findings.family)
    if findings.config is None:  # an old-style pickle, judged now that it is read
        findings = found.detect_file(weights, path, {key: tuple(value.shape) for key, value in state.items()})

    def fail(message: str) -> SpecError:
        return _fail(weights, f"{path} (as {findings.config}): {message}")

    unet, vae, texts = convert_checkpoint(state, findings, fail)
    del state
    scheduler = _scheduler(findings.config or "", findings.prediction_type)
    return _Parts(unet, vae, texts, _shipped_tokenizers(findings.config or ""), scheduler, findings, str(path))


# ---- diffusers folders ----------------------------------------------------------------------------------------


def _from_folder(weights: str, path: Path, part: str, cls: Any, findings: found.Findings) -> Any:
    """One component through its library's from_pretrained, offline; every weight must come from the files."""
    variant = "fp16" if part in findings.fp16_variants else None
    try:
        model, info = cls.from_pretrained(
            str(path), subfolder=part, local_files_only=True, variant=variant, output_loading_info=True
        )
    except Exception as exc:  # OSError, safetensors and config errors: a damaged folder to the user
        raise _fail(weights, f"{path / part} cannot be loaded ({found.reason(exc)})") from None
    problems = [
        f"{kind.replace('_keys', '')} {entry if isinstance(entry, str) else entry[0]}"
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
        for entry in info.get(kind, [])
        if not str(entry if isinstance(entry, str) else entry[0]).endswith("position_ids")
    ]
    if problems:
        raise _fail(weights, f"{path / part} does not fit its config ({len(problems)}: {'; '.join(problems[:4])})")
    return model


def _folder_tokenizer(folder: Path) -> CLIPTokenizer:
    import json

    pad = END
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        file = folder / name
        if file.is_file():
            value = json.loads(file.read_text(encoding="utf-8")).get("pad_token", pad)
            pad = value.get("content", pad) if isinstance(value, dict) else str(value)
            break
    tokenizer = CLIPTokenizer.from_pretrained(str(folder), pad_token=END, local_files_only=True)
    return with_pad(tokenizer, pad)


def _folder_parts(weights: str, path: Path, findings: found.Findings) -> _Parts:
    unet = _from_folder(weights, path, "unet", UNet2DConditionModel, findings)
    vae = _from_folder(weights, path, "vae", AutoencoderKL, findings)
    classes = (CLIPTextModel, CLIPTextModelWithProjection)[: 2 if findings.family == "sdxl" else 1]
    texts = [_from_folder(weights, path, part, cls, findings) for part, cls in zip(TEXT_PARTS, classes, strict=False)]
    try:
        tokenizers = [
            _folder_tokenizer(path / part.replace("text_encoder", "tokenizer")) for part in TEXT_PARTS[: len(texts)]
        ]
    except Exception as exc:  # unreadable tokenizer files
        raise _fail(weights, f"{path}: a tokenizer cannot be loaded ({found.reason(exc)})") from None
    scheduler = found._read_json(path / "scheduler" / "scheduler_config.json")
    return _Parts(unet, vae, texts, tokenizers, dict(scheduler), findings, str(path))


# ---- the loaded model -----------------------------------------------------------------------------------------


def _freeze(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    # torch's own to(): diffusers' adds only a warning about modules to keep in float32, of which these have none.
    module = torch.nn.Module.to(module, device=device, dtype=dtype).eval()
    module.requires_grad_(False)
    return module


def _bundle(parts: _Parts, device: torch.device) -> DiffusionBundle:
    dtype = pick_dtype(device)
    vae_dtype = torch.float32 if dtype == torch.float16 and parts.vae.config.get("force_upcast", False) else dtype
    vae = _freeze(parts.vae, device, vae_dtype)
    return DiffusionBundle(
        family=parts.findings.family,
        label=parts.label,
        unet=_freeze(parts.unet, device, dtype),
        vae=vae,
        text_encoders=[_freeze(model, device, dtype) for model in parts.text_encoders],
        tokenizers=parts.tokenizers,
        scheduler_config=parts.scheduler_config,
        prediction_type=str(parts.scheduler_config.get("prediction_type", parts.findings.prediction_type)),
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        device=device,
        dtype=dtype,
        config=parts.findings.config or "",
    )


def _build(weights: str) -> _Parts:
    findings = found.inspect_weights(weights)
    if findings.kind == "random":
        return _random_parts(weights, findings)
    path = checkpoint_path(weights)
    if findings.kind == "folder":
        return _folder_parts(weights, path, findings)
    return _file_parts(weights, path, findings)


_BUNDLES: dict[tuple[str, torch.device], DiffusionBundle] = {}
_LOCK = threading.Lock()
_builds = 0


def _key(weights: str) -> str:
    return weights if weights.startswith(found.RANDOM_PREFIX) else str(checkpoint_path(weights))


def load_diffusion(weights: str, device: torch.device) -> DiffusionBundle:
    """The model, built once per (weights, device) in this process. SpecError (naming models.diffusion.weights)
    when the weights cannot be had."""
    global _builds
    key = (_key(weights), device)
    with _LOCK:  # the server's worker and a second caller must not build the same model twice
        if key not in _BUNDLES:
            parts = _build(weights)
            _builds += 1
            _BUNDLES[key] = _bundle(parts, device)
        return _BUNDLES[key]


def diffusion_build_count() -> int:
    """How many bundles this process has built (a second load_diffusion of the same weights builds none)."""
    return _builds


def loaded_diffusion() -> list[str]:
    """The label of every bundle loaded in this process, in load order."""
    return list(dict.fromkeys(bundle.label for bundle in list(_BUNDLES.values())))


def clear_diffusion() -> None:
    """Forget every loaded bundle (frees their memory once nothing else holds them)."""
    with _LOCK:
        _BUNDLES.clear()
