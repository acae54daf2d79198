"""The original (CompVis / Stability) key layout of a single Stable Diffusion checkpoint, read from key -> shape maps:
which family a file is, what it is when it is no Stable Diffusion model, and whether its shapes match a shipped config.

The family comes from the text encoders' keys (as diffusers' `CHECKPOINT_KEY_NAMES` tell them apart): OpenAI CLIP under
`cond_stage_model.transformer.` is SD 1.x, OpenCLIP under `cond_stage_model.model.` is SD 2.x, both under
`conditioner.embedders.` is SDXL. The config within a family comes from shapes and block counts that each shipped config
implies (channels, cross-attention width, transformer blocks, text width and depth), so a tiny test model and a real
one are told apart the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]
ReadConfig = Callable[[str, str], dict[str, Any]]

UNET = "model.diffusion_model."
VAE = "first_stage_model."
TEXT_PREFIXES: dict[str, list[tuple[str, str]]] = {  # family -> (key prefix, encoder kind) per text encoder
    "sd1": [("cond_stage_model.transformer.text_model.", "openai")],
    "sd2": [("cond_stage_model.model.", "openclip")],
    "sdxl": [
        ("conditioner.embedders.0.transformer.text_model.", "openai"),
        ("conditioner.embedders.1.model.", "openclip"),
    ],
}
FAMILY_VARIANTS: dict[str, tuple[str, ...]] = {
    "sd1": ("sd1", "tiny-sd"),
    "sd2": ("sd2", "sd2-v"),
    "sdxl": ("sdxl", "tiny-sdxl"),
}
TEXT_PARTS = ("text_encoder", "text_encoder_2")


def _has(shapes: Shapes, prefix: str) -> bool:
    return any(key.startswith(prefix) for key in shapes)


def _any(shapes: Shapes, *parts: str) -> bool:
    return any(part in key for key in shapes for part in parts)


def family_of(shapes: Shapes) -> str | None:
    """sd1, sd2 or sdxl for a text-to-image checkpoint in the original layout; None for anything else."""
    conv_in = shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in is None or len(conv_in) != 4 or conv_in[1] != 4:
        return None
    if _has(shapes, "conditioner.embedders.1.model.") and _has(shapes, "conditioner.embedders.0.transformer."):
        return "sdxl"
    if _has(shapes, "cond_stage_model.model."):
        return "sd2"
    return "sd1" if _has(shapes, "cond_stage_model.transformer.") else None


def _describe_unet(shapes: Shapes) -> str:
    channels = shapes[UNET + "input_blocks.0.0.weight"]
    if len(channels) == 4 and channels[1] != 4:
        return (
            f"a Stable Diffusion UNet of {channels[1]} input channels (inpainting, instruct-pix2pix or an upscaler), "
            "where a text-to-image model has 4"
        )
    if _has(shapes, "conditioner.embedders.0.model."):
        return "the SDXL refiner (it refines SDXL base images; it is no text-to-image base model)"
    return "a Stable Diffusion UNet without its text encoder (no cond_stage_model.* or conditioner.embedders.* keys)"


def describe_foreign(shapes: Shapes) -> str:
    """What a checkpoint that is no supported Stable Diffusion model looks like, in a few words."""
    if not shapes:
        return "no tensors at all"
    if _any(shapes, "lora_", ".lora.", "lora_A", "lora_down"):
        return "a LoRA (adapter weights applied to a model, not a model)"
    if _any(shapes, "joint_blocks."):
        return "SD3 / SD3.5 (an MMDiT, not a UNet)"
    if _any(shapes, "double_blocks.", "single_blocks."):
        return "a Flux-like transformer"
    if _any(shapes, "string_to_param", "emb_params") or set(shapes) <= {"clip_l", "clip_g"}:
        return "a textual-inversion embedding"
    if UNET + "input_blocks.0.0.weight" in shapes:
        return _describe_unet(shapes)
    if "conv_in.weight" in shapes and _any(shapes, "down_blocks."):
        return "a diffusers-layout UNet on its own (give the whole diffusers folder instead)"
    if _any(shapes, "encoder.conv_in.weight", "decoder.conv_in.weight"):
        return "a VAE on its own"
    if _any(shapes, "text_model.", "token_embedding", "transformer.resblocks.", "cond_stage_model.", "conditioner."):
        return "a CLIP text encoder on its own"
    first = ", ".join(sorted(shapes)[:3])
    return f"{len(shapes)} tensors, none a Stable Diffusion UNet (model.diffusion_model.*); first keys: {first}"


def missing_parts(family: str, shapes: Shapes) -> str | None:
    """Which component a checkpoint of this family lacks (a UNet-only or VAE-less file), or None."""
    if VAE + "encoder.conv_in.weight" not in shapes:
        return "it has no VAE (first_stage_model.*); a whole checkpoint holds UNet, VAE and text encoder(s)"
    for prefix, kind in TEXT_PREFIXES[family]:
        token = prefix + ("embeddings.token_embedding.weight" if kind == "openai" else "token_embedding.weight")
        if token not in shapes:
            return f"it has no text encoder {prefix}* ({kind} CLIP)"
    return None


# ---- what a shipped config implies ---------------------------------------------------------------------------


def transformer_blocks(unet: dict[str, Any]) -> int:
    """Cross-attention transformer blocks in a UNet config, counted as diffusers builds them."""
    levels, per = len(unet["block_out_channels"]), unet.get("layers_per_block", 2)
    depth = unet.get("transformer_layers_per_block", 1)
    depth = list(depth) if isinstance(depth, list | tuple) else [depth] * levels
    up_depth = unet.get("reverse_transformer_layers_per_block") or depth[::-1]
    up_depth = [d if isinstance(d, int) else d[0] for d in up_depth]
    down = sum(per * depth[i] for i, kind in enumerate(unet["down_block_types"]) if kind.startswith("CrossAttn"))
    up = sum((per + 1) * up_depth[i] for i, kind in enumerate(unet["up_block_types"]) if kind.startswith("CrossAttn"))
    mid = depth[-1] if unet.get("mid_block_type", "UNetMidBlock2DCrossAttn") == "UNetMidBlock2DCrossAttn" else 0
    return down + mid + up


def _unet_shapes(unet: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    c0 = unet["block_out_channels"][0]
    shapes = {
        UNET + "input_blocks.0.0.weight": (c0, unet.get("in_channels", 4), 3, 3),
        UNET + "time_embed.0.weight": (4 * c0, c0),
        UNET + "out.2.weight": (unet.get("out_channels", 4), c0, 3, 3),
    }
    if unet.get("addition_embed_type") == "text_time":
        shapes[UNET + "label_emb.0.0.weight"] = (4 * c0, unet["projection_class_embeddings_input_dim"])
    return shapes


def _vae_shapes(vae: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    channels, latent = vae["block_out_channels"], vae.get("latent_channels", 4)
    return {
        VAE + "encoder.conv_in.weight": (channels[0], vae.get("in_channels", 3), 3, 3),
        VAE + "decoder.conv_in.weight": (channels[-1], latent, 3, 3),
        VAE + "decoder.conv_out.weight": (vae.get("out_channels", 3), channels[0], 3, 3),
        VAE + "quant_conv.weight": (2 * latent, 2 * latent, 1, 1),
    }


def _text_shapes(prefix: str, kind: str, text: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    width, vocab, positions = text["hidden_size"], text["vocab_size"], text["max_position_embeddings"]
    if kind == "openai":
        return {
            prefix + "embeddings.token_embedding.weight": (vocab, width),
            prefix + "embeddings.position_embedding.weight": (positions, width),
        }
    shapes = {prefix + "token_embedding.weight": (vocab, width), prefix + "positional_embedding": (positions, width)}
    if "CLIPTextModelWithProjection" in text.get("architectures", []):
        shapes[prefix + "text_projection"] = (width, text["projection_dim"])
    return shapes


def _indices(shapes: Shapes, pattern: str) -> int:
    found = re.compile(pattern)
    return len({match.group(1) for key in shapes if (match := found.match(key))})


def _counts(family: str, config: str, read: ReadConfig, shapes: Shapes) -> list[tuple[str, object, object]]:
    """(what, expected, found) for the block counts and widths a config implies."""
    unet, vae = read(config, "unet"), read(config, "vae")
    blocks = len(unet["block_out_channels"]) * (unet.get("layers_per_block", 2) + 1)
    to_k = [shape for key, shape in shapes.items() if key.startswith(UNET) and key.endswith("attn2.to_k.weight")]
    counts: list[tuple[str, object, object]] = [
        ("UNet input blocks", blocks, _indices(shapes, r"model\.diffusion_model\.input_blocks\.(\d+)\.")),
        ("UNet output blocks", blocks, _indices(shapes, r"model\.diffusion_model\.output_blocks\.(\d+)\.")),
        ("UNet cross-attention blocks", transformer_blocks(unet), len(to_k)),
        ("UNet cross-attention width", {unet["cross_attention_dim"]}, {shape[-1] for shape in to_k}),
        ("VAE levels", len(vae["block_out_channels"]), _indices(shapes, r"first_stage_model\.encoder\.down\.(\d+)\.")),
    ]
    for part, (prefix, kind) in zip(TEXT_PARTS, TEXT_PREFIXES[family], strict=False):
        text = read(config, part)
        if kind == "openai":
            found = _indices(shapes, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")
            counts.append((f"{part} layers", text["num_hidden_layers"], found))
        else:  # SD 2.x's encoder drops the last of OpenCLIP's blocks (it conditions on the penultimate layer)
            dropped = 0 if "CLIPTextModelWithProjection" in text.get("architectures", []) else 1
            found = _indices(shapes, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
            counts.append((f"{part} layers", text["num_hidden_layers"] + dropped, found))
    return counts


def mismatches(config: str, shapes: Shapes, read: ReadConfig) -> list[str]:
    """How a checkpoint's shapes differ from what a shipped config implies ([] when they match)."""
    family = next(name for name, configs in FAMILY_VARIANTS.items() if config in configs)
    texts = [read(config, part) for part in TEXT_PARTS[: len(TEXT_PREFIXES[family])]]
    expected = _unet_shapes(read(config, "unet")) | _vae_shapes(read(config, "vae"))
    for (prefix, kind), text in zip(TEXT_PREFIXES[family], texts, strict=True):
        expected |= _text_shapes(prefix, kind, text)
    wrong = [
        f"{key} expected {shape}, found {shapes.get(key, 'none')}"
        for key, shape in expected.items()
        if tuple(shapes.get(key, ())) != shape
    ]
    counts = _counts(family, config, read, shapes)
    return wrong + [f"{what} expected {want}, found {got}" for what, want, got in counts if want != got]
