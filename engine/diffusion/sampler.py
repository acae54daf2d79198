"""The diffusion runner: regional prompts in one UNet pass per step, per-region guidance scale, guide losses on the
predicted clean image every k steps, keep regions held to the init, previews, cancel.

Per step (diffusers' schedulers do the stepping):
1. The UNet runs once on [unconditional, conditional] with the regional text context (engine/diffusion/attention.py):
   every region's prompt, and its negative in the unconditional half.
2. Classifier-free guidance with a scale per pixel: each region's own (`guidance_scale`; embolden regions get a
   higher one), the generator's `cfg` elsewhere.
3. Every `guidance_every` steps, when the job has guides other than text (style, palette, scribble, outline,
   content, inspiration, the per-region losses): the predicted clean latents are decoded and scored by the job's
   `GuideLosses`, exactly as the optimiser scores its render, and the prediction is moved down the gradient
   (the step then follows the corrected prediction). Every k steps because each costs a VAE decode and its
   backward pass; late steps change little, so k = 2 halves the cost for about the same pull.
4. Where nothing is generated (keep regions, and everything outside all regions when there is an init), the latents
   are reset to the init's latents noised to the next step's level, so the sampler works around them.
The final image is decoded and composited over the init with the feathered `free` mask (engine/masks.py):
8-bit pixels under keep masks equal the init's exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import JobCancelled, SpecError
from ..job import PreparedJob
from ..losses import GuideLosses
from ..optimize import to_uint8
from ..progress import CancelToken, Progress, Result
from .attention import RegionalContext, install
from .memory import apply_memory_savers
from .prompts import RegionPrompt, TextContext, encode_prompts, region_prompts
from .tiling import circular_padding

SAMPLERS = {  # spec name -> diffusers scheduler class
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}
EMBOLDEN_SCALE = 0.5  # an embolden region's guidance scale: cfg * (1 + this * strength)
GUIDANCE_STEP = 0.2  # latent units the prediction moves per unit of guidance_strength, at a normalised gradient


def make_scheduler(bundle, name: str):
    import diffusers

    return getattr(diffusers, SAMPLERS[name]).from_config(bundle.scheduler_config)


def _latent_size(job: PreparedJob, factor: int) -> tuple[int, int]:
    spec = job.spec
    for side, value in (("width", spec.width), ("height", spec.height)):
        if value % factor:
            raise SpecError(
                side,
                f"the diffusion model works on {factor}-pixel cells: the canvas side must be a multiple of {factor}",
                value=value,
                allowed=f"a multiple of {factor}, e.g. {max(factor, value - value % factor)}",
            )
    return spec.height // factor, spec.width // factor


def _area(weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(weights, size=size, mode="area")


def region_weights(job: PreparedJob, size: tuple[int, int]) -> torch.Tensor:
    """(R, h, w): the guided regions' weights at latent resolution, then the rest (the top-level prompt's)."""
    guided = _area(job.layout.guided, size)[:, 0] if len(job.layout.names) else torch.zeros(0, *size)
    rest = (1.0 - guided.sum(0, keepdim=True)).clamp_min(0.0)
    weights = torch.cat([guided, rest])
    return weights / weights.sum(0, keepdim=True).clamp_min(1e-8)


def merge_prompts(prompts: list[RegionPrompt], weights: torch.Tensor) -> tuple[list[RegionPrompt], torch.Tensor]:
    """One entry per distinct (prompt, negative), its regions' weights summed; prompts that cover nothing dropped.
    A job with one prompt everywhere then runs diffusers' plain attention, and uncovered pixels cost nothing when
    the regions cover the canvas."""
    merged: dict[tuple[str, str], int] = {}
    kept: list[RegionPrompt] = []
    rows: list[torch.Tensor] = []
    for prompt, weight in zip(prompts, weights, strict=True):
        if not bool((weight > 0).any()):
            continue
        key = (prompt.positive, prompt.negative)
        if key in merged:
            rows[merged[key]] = rows[merged[key]] + weight
            continue
        merged[key] = len(kept)
        kept.append(prompt)
        rows.append(weight)
    if not kept:  # nothing covers anything (cannot happen with normalised weights): the top level everywhere
        return prompts[-1:], torch.ones_like(weights[-1:])
    return kept, torch.stack(rows)


def scale_map(job: PreparedJob, weights: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) classifier-free guidance scale: each region's own, the generator's `cfg` elsewhere."""
    cfg = job.spec.generator.cfg
    by_name = {region.name: region for region in job.spec.regions}
    scales = []
    for name in job.layout.names:
        region = by_name.get(name)
        if region is not None and region.guidance_scale is not None:
            scales.append(region.guidance_scale)
        elif region is not None and region.mode == "embolden":
            scales.append(cfg * (1.0 + EMBOLDEN_SCALE * region.strength))
        else:
            scales.append(cfg)
    scales.append(cfg)
    values = torch.tensor(scales, dtype=weights.dtype, device=weights.device)
    return (weights * values[:, None, None]).sum(0)[None, None]


def region_strengths(job: PreparedJob) -> list[float]:
    """The init strength of each of the layout's regions, then the rest's (the generator's)."""
    strength = job.spec.generator.strength
    by_name = {region.name: region for region in job.spec.regions}
    own = [getattr(by_name.get(name), "init_strength", None) for name in job.layout.names]
    return [strength if value is None else value for value in own] + [strength]


def _start(steps: int, strength: float) -> int:
    """The step a strength starts at: 1 from the first (pure noise), lower ones later, never after the last."""
    return steps - min(steps, max(1, round(steps * strength)))


def alpha_bar(scheduler, t: torch.Tensor) -> torch.Tensor:
    """The cumulative alpha at (possibly fractional) timestep t, interpolated in sigma as Euler-type schedulers do."""
    alphas = scheduler.alphas_cumprod.to(torch.float64)
    sigmas = ((1 - alphas) / alphas).sqrt()
    position = float(t)
    low = min(int(position), len(sigmas) - 1)
    high = min(low + 1, len(sigmas) - 1)
    sigma = sigmas[low] + (position - low) * (sigmas[high] - sigmas[low])
    return (1.0 / (1.0 + sigma**2)).float()


class Sampling:
    """One job's sampling state: model, scheduler, text context, regions, init latents."""

    def __init__(self, job: PreparedJob):
        from .loading import load_diffusion

        spec = job.spec
        self.job, self.config = job, spec.generator
        self.bundle = bundle = load_diffusion(spec.models.diffusion.weights, job.device)
        self.regional = getattr(bundle.unet, "regia_regional", None) or install(bundle.unet)
        bundle.unet.regia_regional = self.regional
        self.size = _latent_size(job, bundle.vae_scale_factor)
        device, dtype = job.device, bundle.dtype
        self.region_weights = weights = region_weights(job, self.size).to(device)
        self.scales = scale_map(job, weights).to(dtype)
        prompts, self.weights = merge_prompts(region_prompts(spec, job.layout.names), weights)
        self.text: TextContext = encode_prompts(bundle, prompts)
        self.context = RegionalContext(self.weights)  # resized per attention layer once, then reused every step
        self.scheduler = make_scheduler(bundle, self.config.sampler)
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.noise = torch.randn((1, 4, *self.size), generator=self.generator).to(device, dtype)
        self.init_latents = self._encode(job.init) if job.init is not None else None
        self.free = _area(job.layout.free, self.size).to(dtype) if job.init is not None else None
        # the step each region starts at (its own init_strength, else the generator's); the rest at the generator's
        starts = [_start(spec.steps, strength) for strength in region_strengths(job)]
        self.first = min(starts) if self.init_latents is not None else 0
        self.starts = torch.tensor(starts, device=device) - self.first
        self.timesteps = self._timesteps(spec.steps)
        self.guide = GuideLosses(job) if job.terms else None
        self.memory = apply_memory_savers(bundle, spec.width, spec.height, tileable=spec.tileable)

    def _timesteps(self, steps: int) -> torch.Tensor:
        scheduler = self.scheduler
        scheduler.set_timesteps(steps, device=self.job.device)
        if self.first == 0:
            return scheduler.timesteps
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(self.first * scheduler.order)
        return scheduler.timesteps[self.first * scheduler.order :]

    @torch.no_grad()
    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        vae = self.bundle.vae
        moments = vae.encode((image * 2 - 1).to(vae.dtype)).latent_dist
        return moments.mean * vae.config.scaling_factor  # the mean, not a sample: the same latents every run

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [0, 1]; differentiable, so guides can pull on the latents."""
        vae = self.bundle.vae
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return ((image.float() + 1) / 2).clamp(0, 1)

    def start_latents(self) -> torch.Tensor:
        if self.init_latents is None:
            return self.noise * self.scheduler.init_noise_sigma
        noised = self.scheduler.add_noise(self.init_latents, self.noise, self.timesteps[:1])
        if self.first > 0:
            return noised
        # strength 1: pure noise where generated from the first step; the rest at the init, noised to its level
        return torch.lerp(noised, self.noise * self.scheduler.init_noise_sigma, self.free_at(0))

    def free_at(self, index: int) -> torch.Tensor | None:
        """(1, 1, h, w): how much of each latent cell is generated at step `index` (None: all of it, no init).
        Keep regions never are; a region with a lower strength than the earliest joins at its own step."""
        if self.free is None:
            return None
        started = (self.starts <= index).to(self.region_weights.dtype)
        return self.free * (self.region_weights * started[:, None, None]).sum(0)[None, None].to(self.free.dtype)

    def held(self, latents: torch.Tensor, index: int) -> torch.Tensor:
        """Latents with the init's, noised to the level after step `index`, wherever nothing is generated yet."""
        free = self.free_at(index + 1)
        if free is None:
            return latents
        following = self.timesteps[index + 1 : index + 2]
        if len(following) == 0:
            target = self.init_latents
            free = self.free
        else:
            target = self.scheduler.add_noise(self.init_latents, self.noise, following)
        return torch.lerp(target, latents, free)

    def predict(self, latents: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The guided model output for `latents` at t, and the UNet's input (x_t) it was computed from."""
        model_in = self.scheduler.scale_model_input(torch.cat([latents, latents]), t)
        extra = self._added_conditions()
        self.regional.context = self.context
        try:
            out = self.bundle.unet(model_in, t, encoder_hidden_states=self.text.hidden, added_cond_kwargs=extra)
        finally:  # the UNet is cached and shared: its next caller (another job, or none) brings its own context
            self.regional.context = None
        out = out.sample
        unconditional, conditional = out.chunk(2)
        return unconditional + self.scales * (conditional - unconditional), model_in[:1]

    def _added_conditions(self) -> dict[str, torch.Tensor] | None:
        if self.text.pooled is None:
            return None
        share = self.weights.flatten(1).mean(1).to(self.text.pooled.dtype)  # each prompt's share of the canvas
        pooled = (self.text.pooled * share[None, :, None]).sum(1)
        h, w = self.job.spec.height, self.job.spec.width
        ids = torch.tensor([[h, w, 0, 0, h, w]] * 2, dtype=pooled.dtype, device=pooled.device)
        return {"text_embeds": pooled, "time_ids": ids}

    def clean(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The predicted clean latents (x0) from a model output at x_t."""
        a = alpha_bar(self.scheduler, t).to(x_t.device)
        if self.bundle.prediction_type == "v_prediction":
            return a.sqrt() * x_t - (1 - a).sqrt() * output
        return (x_t - (1 - a).sqrt() * output) / a.sqrt()

    def output_for(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model output that predicts `x0` at x_t (the inverse of `clean`)."""
        a = alpha_bar(self.scheduler, t).to(x_t.device)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        if self.bundle.prediction_type == "v_prediction":
            return a.sqrt() * eps - (1 - a).sqrt() * x0
        return eps

    def guidance(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """How far to move the scheduler's sample so that the clean image it predicts scores better on the job's
        guides (the same model output then predicts x0 + delta); and the weighted losses."""
        x0 = self.clean(output, x_t, t).detach().float().requires_grad_(True)
        decoded = self.decode(x0)
        total, values = self.guide(self.job.layout.composite(decoded, self.job.init))
        gradient, on_pixels = torch.autograd.grad(total, [x0, decoded])
        # a guide moves only the latents under the pixels it scores: the decoder's reach would spill it further
        scored = (on_pixels.abs().sum(1, keepdim=True) > 0).float()
        gradient = gradient * F.adaptive_max_pool2d(scored, gradient.shape[-2:])
        delta = -GUIDANCE_STEP * self.config.guidance_strength * gradient / _support_rms(gradient)
        # x_t = sqrt(a) x0 + sqrt(1 - a) eps, and schedulers that work in sigma space hold x_t / sqrt(a) as sample
        a = alpha_bar(self.scheduler, t).to(x_t.device)
        sample_per_x_t = 1.0 / self.scheduler.scale_model_input(torch.ones(1, device=x_t.device), t)
        return (delta * a.sqrt() * sample_per_x_t).to(output.dtype), values.detach()


def _support_rms(gradient: torch.Tensor) -> torch.Tensor:
    """The gradient's RMS over the latent cells it really acts on (a guide in a small region pulls as hard as one
    over the whole canvas), so one guidance strength means the same move whatever the region's size."""
    magnitude = gradient.pow(2).sum(1)  # (1, h, w)
    support = magnitude > 1e-4 * magnitude.max()
    return (magnitude[support].mean() / gradient.shape[1]).sqrt().clamp_min(1e-12)


def run(
    job: PreparedJob, on_progress: Callable[[Progress], None] | None = None, cancel: CancelToken | None = None
) -> Result:
    """Sample the job's image; progress after each step, a preview every `preview_every` steps. A tileable job
    runs with the model's convolutions padding circularly (engine/diffusion/tiling.py)."""
    from .loading import load_diffusion

    bundle = load_diffusion(job.spec.models.diffusion.weights, job.device)  # the cached bundle Sampling takes
    with circular_padding((bundle.unet, bundle.vae), job.spec.tileable):
        return _sample(job, on_progress, cancel)


def _sample(job: PreparedJob, on_progress: Callable[[Progress], None] | None, cancel: CancelToken | None) -> Result:
    spec, start = job.spec, time.perf_counter()
    state = Sampling(job)
    keys = [term.key for term in job.terms]
    history: list[dict[str, float]] = []
    latest: dict[str, float] = {}
    latents = state.start_latents()
    steps = len(state.timesteps)
    for index, t in enumerate(state.timesteps):
        if cancel is not None and cancel.cancelled:
            raise JobCancelled(f"cancelled after {index} of {steps} steps")
        with torch.no_grad():
            output, x_t = state.predict(latents, t)
        if state.guide is not None and index % state.config.guidance_every == 0:
            shift, values = state.guidance(output, x_t, t)
            latents = latents + shift
            row = values.cpu().tolist()
            latest = {"total": float(sum(row)), **dict(zip(keys, row, strict=True))}
        if latest:
            history.append(latest)
        with torch.no_grad():
            latents = state.held(state.scheduler.step(output, t, latents, generator=state.generator).prev_sample, index)
        done = index + 1
        if on_progress is not None:
            preview = None
            if spec.preview_every and (done == 1 or done % spec.preview_every == 0) and done < steps:
                with torch.no_grad():
                    preview = to_uint8(job.layout.composite(state.decode(state.clean(output, x_t, t)), job.init))
            losses = {k: v for k, v in latest.items() if k != "total"}
            on_progress(Progress(done, steps, time.perf_counter() - start, losses, latest.get("total", 0.0), preview))
    with torch.no_grad():
        final = job.layout.composite(state.decode(latents), job.init)
    return Result(image=to_uint8(final), history=history, elapsed=time.perf_counter() - start)
