"""Step time of the `diffusion` generator: what regional prompts and per-region guides cost over one plain prompt,
and the engine's one-prompt step against diffusers' own `StableDiffusionPipeline` on the same components.

What is measured
- The engine's real sampler (`engine.diffusion.sampler.run`) on jobs built from spec dicts through
  `validate_spec` and `prepare_job`; the time of a step is the gap between two consecutive progress callbacks
  (the UNet pass on [negative, positive], classifier-free guidance, the guides when due, the scheduler step,
  keep). Previews are off; the first step of every run is dropped (warm-up, the guides' loss scales).
- Configurations, all at the same size and steps, with `random:<config>` weights (random, built in code):
  - "1 prompt": one top-level prompt and negative, no regions (the baseline);
  - "4 regions": four quadrants, each with its own prompt and negative, and the top-level prompt for the rest:
    5 prompts in the one UNet pass;
  - "4 regions + style (k)": the same, and a style guide in two of the quadrants, pulling every k steps (k = 2 is
    the generator's default; k = 1 is every step);
  - "diffusers pipeline": `StableDiffusionPipeline` with the same UNet, VAE, text encoder and scheduler, one
    prompt and negative, stock attention (sd1 and sd2 configs only), stamped by `callback_on_step_end`.
- The machine is noisy, so figures are ratios measured side by side in one run: every round runs every
  configuration once (round robin, the order rotated each round); the table gives each one's mean step over all
  rounds (the mean, not the median: with k = 2 every other step carries the guides) and its ratio to "1 prompt".
- Target (issue 12): "4 regions" at most 1.3x "1 prompt" on the CPU with the tiny model; on a GPU, SD 1.5's
  architecture at 512x512 in half precision, at most 1.15x diffusers' pipeline step.

Run: `.venv/bin/python bench/diffusion_step.py [--config tiny-sd] [--size 256] [--steps 6] [--rounds 3]`
(`--config sd1 --size 512 --device cuda` for the GPU figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _harness import StepClock, StepSeconds, load_warning, machine_line, set_threads, time_round_robin
from PIL import Image
from skimage import data

from engine.device import pick_device
from engine.diffusion.loading import load_diffusion
from engine.diffusion.sampler import make_scheduler
from engine.diffusion.sampler import run as sample
from engine.job import prepare_job
from engine.refs import FolderSource
from engine.spec import validate_spec

BASELINE = "1 prompt"
PIPELINE = "diffusers pipeline"
REGION_TARGET = ("4 regions", 1.3)
QUADRANTS = ("sky", "hill", "lake", "field")
PROMPT, NEGATIVE = "a quiet valley at dawn, oil painting", "blurry, low quality"


def write_assets(folder: Path, size: int) -> None:
    half = size // 2
    for index, name in enumerate(QUADRANTS):
        mask = np.zeros((size, size), dtype=np.uint8)
        row, column = divmod(index, 2)
        mask[row * half : (row + 1) * half, column * half : (column + 1) * half] = 255
        Image.fromarray(mask).save(folder / f"{name}.png")
    Image.fromarray(data.brick()).save(folder / "brick.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.png")


def _texts(prompt: str) -> list[dict]:
    return [{"kind": "text", "prompt": prompt}, {"kind": "text", "prompt": NEGATIVE, "weight": -1.0}]


def build_spec(name: str, config: str, size: int, steps: int) -> dict:
    spec: dict = {
        "version": 1, "width": size, "height": size, "seed": 0, "steps": steps, "preview_every": 0,
        "generator": {"kind": "diffusion", "sampler": "euler"},
        "models": {"diffusion": {"weights": f"random:{config}"}},
        "guides": _texts(PROMPT),
    }  # fmt: skip
    if name == BASELINE:
        return spec
    spec["regions"] = [
        {"name": region, "mask": f"{region}.png", "guides": _texts(f"the {region} of a valley")} for region in QUADRANTS
    ]
    if "style" in name:
        every = int(name.rsplit("(", 1)[1].split()[1].rstrip(")"))
        spec["generator"]["guidance_every"] = every
        for region, image in (("sky", "coffee"), ("field", "brick")):
            index = QUADRANTS.index(region)
            spec["regions"][index]["guides"].append({"kind": "style", "image": f"{image}.png", "weight": 1.0})
    return spec


def engine_runner(folder: Path, spec: dict, device: torch.device) -> Callable[[], StepSeconds]:
    job = prepare_job(validate_spec(spec), FolderSource(folder), device)

    def once() -> StepSeconds:
        clock = StepClock(device)
        sample(job, on_progress=clock.stamp)
        return clock.steps()

    return once


def pipeline_runner(config: str, size: int, steps: int, device: torch.device) -> Callable[[], StepSeconds] | None:
    """diffusers' own pipeline on the same components, with diffusers' stock attention while it runs."""
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    bundle = load_diffusion(f"random:{config}", device)
    if bundle.family == "sdxl":
        return None
    pipe = StableDiffusionPipeline(
        vae=bundle.vae, text_encoder=bundle.text_encoders[0], tokenizer=bundle.tokenizers[0], unet=bundle.unet,
        scheduler=make_scheduler(bundle, "euler"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)

    def once() -> StepSeconds:
        clock = StepClock(device)
        ours = dict(bundle.unet.attn_processors)
        bundle.unet.set_attn_processor(AttnProcessor2_0())
        try:
            pipe(PROMPT, negative_prompt=NEGATIVE, height=size, width=size, num_inference_steps=steps,
                 guidance_scale=7.0, generator=torch.Generator().manual_seed(0), output_type="latent",
                 callback_on_step_end=lambda _pipe, _i, _t, kwargs: (clock.stamp(), kwargs)[1])  # fmt: skip
        finally:
            bundle.unet.set_attn_processor(ours)
        return clock.steps()

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--config", default="tiny-sd", help="random:<config> weights: tiny-sd, sd1, sd2, ...")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    device = pick_device(args.device)
    names = [BASELINE, "4 regions", "4 regions + style (every 2)", "4 regions + style (every 1)"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_assets(folder, args.size)
        runners = {n: engine_runner(folder, build_spec(n, args.config, args.size, args.steps), device) for n in names}
        pipeline = pipeline_runner(args.config, args.size, args.steps, device)
        if pipeline is not None:
            runners[PIPELINE] = pipeline
        for runner in runners.values():  # warm-up: first calls, allocator, the guides' scales
            runner()
        timings = time_round_robin(runners, args.rounds)
    print(machine_line(device))
    warning = load_warning(device)
    if warning:
        print(warning)
    print(f"random:{args.config} at {args.size}x{args.size}, {args.steps} steps (first dropped), {args.rounds} rounds")
    mean_ms = {
        name: 1000.0 * float(np.mean([t for run in timing.wall for t in run])) for name, timing in timings.items()
    }
    base = mean_ms[BASELINE]
    print(f"{'configuration':32} {'ms/step':>9} {'x 1 prompt':>11}")
    for name, ms in mean_ms.items():
        print(f"{name:32} {ms:9.1f} {ms / base:11.2f}")
    name, target = REGION_TARGET
    ratio = mean_ms[name] / base
    print(f"target: {name} <= {target}x {BASELINE}: {ratio:.2f}x ({'met' if ratio <= target else 'NOT met'})")
    if PIPELINE in mean_ms:
        print(f"the engine's 1 prompt / {PIPELINE}: {base / mean_ms[PIPELINE]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
