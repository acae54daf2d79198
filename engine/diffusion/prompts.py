"""Text guides as prompts: one prompt and one negative per region, and the top-level prompt for uncovered pixels.

A region's prompt is its own positive text guides, then (for an edit region) the top-level ones, joined with
commas; its negative is the negative-weight texts the same way. Uncovered pixels get the top-level texts alone. All
of them are encoded once per job into one text context: R prompts of 77 tokens side by side, the regions' in layout
order and the top level's last, for the conditional half; the negatives the same way for the unconditional half.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..spec import JobSpec

SEPARATOR = ", "


@dataclass(frozen=True)
class RegionPrompt:
    name: str  # the region's name, or "" for the top level
    positive: str
    negative: str


def _texts(guides: list, sign: int) -> list[str]:
    return [g.prompt for g in guides if g.kind == "text" and (g.weight > 0 if sign > 0 else g.weight < 0)]


def region_prompts(spec: JobSpec, guided: list[str]) -> list[RegionPrompt]:
    """A prompt per guided region (`guided`: the layout's names, in its order), then the top level's."""
    top_positive, top_negative = _texts(spec.guides, +1), _texts(spec.guides, -1)
    by_name = {region.name: region for region in spec.regions}
    prompts = []
    for name in guided:
        region = by_name.get(name)
        if region is None:  # the layout's implicit whole-canvas region: the top level acts there
            prompts.append(RegionPrompt(name, SEPARATOR.join(top_positive), SEPARATOR.join(top_negative)))
            continue
        shared = region.mode == "edit"  # top-level guides act in every edit region, as for other generators
        positive = _texts(region.guides, +1) + (top_positive if shared else [])
        negative = _texts(region.guides, -1) + (top_negative if shared else [])
        prompts.append(RegionPrompt(name, SEPARATOR.join(positive), SEPARATOR.join(negative)))
    prompts.append(RegionPrompt("", SEPARATOR.join(top_positive), SEPARATOR.join(top_negative)))
    return prompts


@dataclass
class TextContext:
    """What the UNet is conditioned on: (2, R*77, D) for [unconditional, conditional], and SDXL's pooled embeds."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None  # (2, R, P) for SDXL, else None
    regions: int


def _tokens(tokenizer, texts: list[str], device: torch.device) -> torch.Tensor:
    return tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids.to(device)


@torch.no_grad()
def _encode(bundle, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n, 77, D) hidden states and, for SDXL, (n, P) pooled embeddings, as diffusers' pipelines compute them."""
    if bundle.family != "sdxl":
        (encoder,), (tokenizer,) = bundle.text_encoders, bundle.tokenizers
        return encoder(_tokens(tokenizer, texts, bundle.device))[0], None
    hidden, pooled = [], None
    for encoder, tokenizer in zip(bundle.text_encoders, bundle.tokenizers, strict=True):
        out = encoder(_tokens(tokenizer, texts, bundle.device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])  # SDXL conditions on the penultimate layer of both encoders
        pooled = out[0]  # the second encoder's projected pooled output
    return torch.cat(hidden, dim=-1), pooled


def encode_prompts(bundle, prompts: list[RegionPrompt]) -> TextContext:
    """Every prompt and negative of a job, encoded once, as the UNet's [unconditional, conditional] context."""
    positive, pos_pooled = _encode(bundle, [p.positive for p in prompts])
    negative, neg_pooled = _encode(bundle, [p.negative for p in prompts])
    if bundle.family == "sdxl":  # SDXL conditions on zeros, not on the empty prompt, when there is no negative
        empty = torch.tensor([not p.negative for p in prompts], device=negative.device)
        negative = torch.where(empty[:, None, None], torch.zeros_like(negative), negative)
        neg_pooled = torch.where(empty[:, None], torch.zeros_like(neg_pooled), neg_pooled)
    count, dim = len(prompts), positive.shape[-1]
    hidden = torch.stack([negative.reshape(count * positive.shape[1], dim), positive.reshape(-1, dim)])
    pooled = torch.stack([neg_pooled, pos_pooled]) if pos_pooled is not None else None
    return TextContext(hidden.to(bundle.dtype), None if pooled is None else pooled.to(bundle.dtype), count)
