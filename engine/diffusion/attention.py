"""Regional cross-attention: every region's prompt in one UNet pass, each attended to only where its region is.

The text context of a step is the concatenation of R prompts (T tokens each): the regions' own and, last, the
top-level prompt for pixels no region covers. At every cross-attention layer each query position attends to each
prompt's tokens separately (a softmax per prompt), and the R results are blended by the regions' weights at that
layer's resolution. So a position fully inside region A gets exactly the attention a run with A's prompt alone would
give it, whatever the other prompts say; positions on a feathered border blend their regions. The weights are
resized per layer by max-pooling then renormalising, so a region smaller than one cell of a coarse layer still
owns part of it. The cost over one prompt is R small (T-token) attentions per layer; the UNet still runs once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

TOKENS = 77  # CLIP's context length: every prompt is this many tokens


@dataclass
class RegionalContext:
    """The regions of the running job: (R, h, w) weights at latent resolution summing to 1 at every position."""

    weights: torch.Tensor
    _by_length: dict[int, torch.Tensor] = field(default_factory=dict)
    _parts: dict[int, list[tuple[torch.Tensor | None, torch.Tensor]]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.weights.shape[0]

    def at(self, length: int) -> torch.Tensor:
        """(N, R) weights for a layer whose token grid has `length` positions (the latent halved k times)."""
        if length not in self._by_length:
            self._by_length[length] = self._resized(length)
        return self._by_length[length]

    def parts(self, length: int) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Per prompt: the positions it has weight at (None: all of them) and its (n, 1) weights there."""
        if length not in self._parts:
            grid, parts = self.at(length), []
            for column in grid.T:
                inside = torch.nonzero(column > 0).flatten()
                if len(inside) == length:
                    parts.append((None, column[:, None]))
                else:
                    parts.append((inside, column[inside, None]))
            self._parts[length] = parts
        return self._parts[length]

    def _resized(self, length: int) -> torch.Tensor:
        h, w = self.weights.shape[-2:]
        for k in range(8):
            size = (math.ceil(h / 2**k), math.ceil(w / 2**k))
            if size[0] * size[1] == length:
                break
        else:
            raise ValueError(f"no attention grid of {length} positions for a {h}x{w} latent")
        grid = self.weights if k == 0 else F.adaptive_max_pool2d(self.weights[None], size)[0]
        grid = grid / grid.sum(0, keepdim=True).clamp_min(1e-8)
        return grid.flatten(1).T.contiguous()


class RegionalAttnProcessor:
    """A cross-attention processor for diffusers' Attention modules (attn2 in each transformer block). With one
    prompt it is diffusers' own scaled-dot-product attention; with R it attends per prompt and blends by region."""

    def __init__(self) -> None:
        self.context: RegionalContext | None = None  # set by the sampler before each UNet call
        self.dense: bool | None = None  # None: dense on CUDA, sparse elsewhere (see the functions below)

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("RegionalAttnProcessor is for cross-attention layers only")
        context = self.context
        regions = 1 if context is None else context.count
        if regions * TOKENS != encoder_hidden_states.shape[1]:
            raise ValueError(
                f"the text context holds {encoder_hidden_states.shape[1]} tokens, not {regions} prompts of {TOKENS}"
            )
        batch, length, _ = hidden_states.shape
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        heads = attn.heads
        query = attn.to_q(hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        dim = key.shape[-1] // heads
        query = query.view(batch, length, heads, dim).transpose(1, 2)  # (B, H, N, d)
        if regions == 1:
            key = key.view(batch, -1, heads, dim).transpose(1, 2)
            value = value.view(batch, -1, heads, dim).transpose(1, 2)
            out = F.scaled_dot_product_attention(query, key, value, scale=attn.scale)
        else:
            key = key.view(batch, regions, TOKENS, heads, dim).permute(0, 3, 1, 2, 4)  # (B, H, R, T, d)
            value = value.view(batch, regions, TOKENS, heads, dim).permute(0, 3, 1, 2, 4)
            dense = query.is_cuda if self.dense is None else self.dense
            if dense:
                out = dense_regional(query, key, value, context.at(length), attn.scale)
            else:
                out = sparse_regional(query, key, value, context.parts(length), attn.scale)
        out = out.transpose(1, 2).reshape(batch, length, heads * dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def dense_regional(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, weights: torch.Tensor, scale: float
) -> torch.Tensor:
    """Every query against every prompt, in one fused kernel with the prompts as a batch dimension (the arithmetic
    of one attention over all R*T tokens, but a softmax per prompt), blended by the (N, R) weights. One launch:
    for GPUs, where a step is bound by kernel launches and the extra arithmetic is nearly free.
    query (B, H, N, d); key and value (B, H, R, T, d)."""
    batch, heads, length, dim = query.shape
    queries = query[:, :, None].expand(batch, heads, key.shape[2], length, dim)
    per_prompt = F.scaled_dot_product_attention(queries, key, value, scale=scale)  # (B, H, R, N, d)
    return torch.einsum("bhrnd,nr->bhnd", per_prompt, weights.to(per_prompt.dtype))


def sparse_regional(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    parts: list[tuple[torch.Tensor | None, torch.Tensor]],
    scale: float,
) -> torch.Tensor:
    """Each prompt attended to only at the positions its region reaches: about one prompt's arithmetic in all when
    regions do not overlap, whatever their number; R small launches. For CPUs, where arithmetic is the cost."""
    out = torch.zeros_like(query)
    for index, (inside, weight) in enumerate(parts):
        k, v, w = key[:, :, index], value[:, :, index], weight.to(query.dtype)
        if inside is None:
            out += F.scaled_dot_product_attention(query, k, v, scale=scale) * w
        else:
            out.index_add_(2, inside, F.scaled_dot_product_attention(query[:, :, inside], k, v, scale=scale) * w)
    return out


def install(unet) -> RegionalAttnProcessor:
    """One shared processor on every cross-attention layer of `unet` (self-attention keeps its own); returns it."""
    regional = RegionalAttnProcessor()
    processors = {
        name: (regional if name.endswith("attn2.processor") else processor)
        for name, processor in unet.attn_processors.items()
    }
    unet.set_attn_processor(processors)
    return regional
