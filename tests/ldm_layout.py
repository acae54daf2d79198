"""Diffusers state dicts back to the original (CompVis / Stability) single-file layout, to make test checkpoints.

The inverse of diffusers' single-file converters, written from the two layouts rather than from the converters:
test_diffusion_models checks it by converting back with diffusers' own (`convert_ldm_unet_checkpoint`, ...).

Original UNet: `input_blocks.0` is conv_in, then per level `layers_per_block` blocks of [resnet, transformer] and a
downsampler block (`.0.op`) except after the last level; `middle_block` is resnet, transformer, resnet; per up level
`layers_per_block + 1` blocks of [resnet, transformer, upsampler] (the upsampler in the level's last block, at `.1`
when the level has no transformer, else `.2`). Original VAE: `down.i.block.j`, `down.i.downsample`, `mid.block_1`,
`mid.attn_1` (1x1 convolutions), `mid.block_2`, and `up.i` numbered from the lowest resolution, so reversed.
OpenAI CLIP sits whole under its prefix; OpenCLIP keeps q, k and v as one `in_proj` and its projection transposed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

UNET, VAE = "model.diffusion_model.", "first_stage_model."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
SDXL_TEXT = ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model.")
UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest: str, names: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{names.get(head, head)}.{tail}"


def _unet_key(key: str, per: int, up_attention: list[bool]) -> str:
    blocks = per + 1
    if match := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        slot = f"0.{_resnet(rest, RESNET)}" if kind == "resnets" else f"1.{rest}"
        return f"input_blocks.{1 + level * blocks + index}.{slot}"
    if match := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(match[1]) + 1) * blocks}.0.op.{match[2]}"
    if match := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(match[1])}.{_resnet(match[2], RESNET)}"
    if match := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{match[1]}"
    if match := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, index, rest = int(match[1]), match[2], int(match[3]), match[4]
        slot = f"0.{_resnet(rest, RESNET)}" if kind == "resnets" else f"1.{rest}"
        return f"output_blocks.{level * blocks + index}.{slot}"
    if match := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        level = int(match[1])
        return f"output_blocks.{level * blocks + per}.{2 if up_attention[level] else 1}.conv.{match[2]}"
    head, _, tail = key.rpartition(".")
    if head in UNET_TOP:
        return f"{UNET_TOP[head]}.{tail}"
    raise KeyError(f"no original-layout name for UNet key {key}")


def unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict under `model.diffusion_model.` in the original layout."""
    up_attention = [kind.startswith("CrossAttn") for kind in config["up_block_types"]]
    return {UNET + _unet_key(key, config["layers_per_block"], up_attention): value for key, value in state.items()}


def _vae_key(key: str, levels: int) -> str:
    if match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{match[1]}.block.{match[2]}.{_resnet(match[3], {'conv_shortcut': 'nin_shortcut'})}"
    if match := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{match[1]}.downsample.conv.{match[2]}"
    if match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        level = levels - 1 - int(match[1])
        return f"decoder.up.{level}.block.{match[2]}.{_resnet(match[3], {'conv_shortcut': 'nin_shortcut'})}"
    if match := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{levels - 1 - int(match[1])}.upsample.conv.{match[2]}"
    if match := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{match[1]}.mid.block_{int(match[2]) + 1}.{_resnet(match[3], {'conv_shortcut': 'nin_shortcut'})}"
    if match := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        return f"{match[1]}.mid.attn_1.{VAE_ATTENTION[match[2]]}.{match[3]}"
    return key.replace("conv_norm_out", "norm_out")


def vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict under `first_stage_model.`; attention weights as 1x1 convolutions."""
    levels, out = len(config["block_out_channels"]), {}
    for key, value in state.items():
        name = _vae_key(key, levels)
        is_attention_weight = ".mid.attn_1." in name and name.endswith("weight") and ".norm." not in name
        out[VAE + name] = value[:, :, None, None] if is_attention_weight else value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str = SD1_TEXT) -> dict[str, torch.Tensor]:
    """An OpenAI CLIP text model (transformers' CLIPTextModel) whole under `prefix`, with the position ids that
    original checkpoints carry."""
    out = {prefix + "text_model." + key.removeprefix("text_model."): value for key, value in state.items()}
    positions = out[prefix + "text_model.embeddings.position_embedding.weight"].shape[0]
    out[prefix + "text_model.embeddings.position_ids"] = torch.arange(positions)[None]
    return out


OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
OPEN_CLIP_TOP = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}


def _open_clip_layer(index: str, rest: str, out: dict[str, torch.Tensor], value: torch.Tensor, prefix: str) -> None:
    block = f"{prefix}transformer.resblocks.{index}."
    if match := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest):
        out.setdefault(f"{block}attn.in_proj_{match[2]}", {})[match[1]] = value  # type: ignore[index]
        return
    if rest.startswith("self_attn.out_proj."):
        out[block + "attn." + rest.removeprefix("self_attn.")] = value
        return
    head, _, tail = rest.rpartition(".")
    out[f"{block}{OPEN_CLIP_LAYER[head]}.{tail}"] = value


def open_clip_to_ldm(state: dict[str, torch.Tensor], prefix: str, sd2_extras: bool = False) -> dict[str, torch.Tensor]:
    """A CLIP text model as OpenCLIP stores it under `prefix` (`text_projection` transposed, q/k/v as `in_proj`).
    `sd2_extras` adds what SD 2.x files hold beyond the 23 layers the model uses: OpenCLIP's 24th block and its
    projection (the converter drops both)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        key = key.removeprefix("text_model.")
        if match := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
            _open_clip_layer(match[1], match[2], out, value, prefix)
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key in OPEN_CLIP_TOP:
            out[prefix + OPEN_CLIP_TOP[key]] = value
        elif not key.endswith("position_ids"):
            raise KeyError(f"no OpenCLIP name for text key {key}")
    for key, parts in list(out.items()):
        if isinstance(parts, dict):
            out[key] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if sd2_extras:
        last = max(int(k.split(".")[len(prefix.split(".")) + 1]) for k in out if ".resblocks." in k)
        block = f"{prefix}transformer.resblocks.{last}."
        out |= {
            key.replace(block, f"{prefix}transformer.resblocks.{last + 1}."): v
            for key, v in out.items()
            if key.startswith(block)
        }
        width = out[prefix + "token_embedding.weight"].shape[1]
        out[prefix + "text_projection"] = torch.zeros(
            width, width, device=out[prefix + "token_embedding.weight"].device
        )
    return out


def checkpoint(family: str, unet: Any, vae: Any, texts: list[Any]) -> dict[str, torch.Tensor]:
    """A whole original-layout checkpoint (sd1, sd2 or sdxl) of these diffusers/transformers models."""
    out = unet_to_ldm(unet.state_dict(), unet.config) | vae_to_ldm(vae.state_dict(), vae.config)
    if family == "sd1":
        out |= clip_to_ldm(texts[0].state_dict())
    elif family == "sd2":
        out |= open_clip_to_ldm(texts[0].state_dict(), SD2_TEXT, sd2_extras=True)
    else:
        out |= clip_to_ldm(texts[0].state_dict(), SDXL_TEXT[0]) | open_clip_to_ldm(texts[1].state_dict(), SDXL_TEXT[1])
    return out


def save_diffusers_folder(
    folder: Path, config: str, unet: Any, vae: Any, texts: list[Any], tokenizers: list[Any], scheduler: dict
) -> Path:
    """The same models as a diffusers folder, laid out as save_pretrained leaves it (`config`: a shipped config,
    whose model_index.json it takes)."""
    from engine.diffusion import weights as found

    folder.mkdir(parents=True)
    shutil.copy(found.CONFIG_ROOT / config / "model_index.json", folder / "model_index.json")
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    for i, (encoder, tokenizer) in enumerate(zip(texts, tokenizers, strict=True)):
        suffix = f"_{i + 1}" if i else ""
        encoder.save_pretrained(folder / f"text_encoder{suffix}")
        tokenizer.save_pretrained(folder / f"tokenizer{suffix}")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    return folder
