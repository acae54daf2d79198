"""CLIP guidance step time and peak memory: the engine's ClipBank against the loop VQGAN-CLIP and pixray run.

What is measured
- The reference: the loop as VQGAN-CLIP and pixray write it, in this file (`PixrayCutouts`, `Reference`):
  an image parameter (pixels through a sigmoid), pixray's MakeCutouts (a Python loop over the cutouts: size
  `rand ** cut_pow * (max_size - min_size) + min_size`, a random offset, the crop, then (adaptive average pool +
  adaptive max pool) / 2 to CLIP's input size; then kornia's RandomAffine(degrees 30, translate 0.1, p 0.8,
  border padding) as VQGAN-CLIP and early pixray configure it, RandomPerspective(0.2, p 0.7) and
  ColorJitter(hue 0.1, saturation 0.1, p 0.8) as pixray does, and noise up to 0.1), then CLIP normalisation,
  `encode_image`, the spherical distance to one text embedding, its mean, backward and an Adam step.
- The engine, through the real code path (`validate_spec` -> `prepare_job` -> `optimize.run`), a step being the
  gap between two progress callbacks (previews off; on CUDA the callback synchronises first):
  (a) one text guide over the whole canvas; (b) 8 vertical strips, each a region with its own prompt, sharing
  the SAME budget of cutouts (at least 4 each). ClipBank sends every region's cutouts through ONE CLIP forward,
  so (b) should cost about what (a) does (a design with a forward per region would cost 8x).
- Without augmentation on both sides (`cutouts.augment = false`; the reference without its kornia augmentations
  and noise): the crop-and-resize core compared apples to apples.
- Every configuration uses the same model, open_clip ViT-B-32 with fixed-seed random weights
  (`load_clip("ViT-B-32", "random", device)`: the cost of a step does not depend on the weights), 32 cutouts
  and a 512x512 canvas by default.
- The machine is noisy, so figures are ratios measured side by side in one run: every round runs every
  configuration once (round robin, the order rotated each round); each configuration's figure is its median
  step over all rounds, the first step of every run (warm-up, loss scales) dropped. On CPU the table also gives
  the process's CPU time per step.
- Targets (issue 5): (a) <= 1.10x the reference; (b) <= 1.25x (a).
- Peak memory: each configuration is run again after a warm-up on a tiny canvas with one cutout (model built,
  kernels and thread pools in place; one cutout, because the allocator keeps what the warm-up touched). On CPU
  this happens in a child process per configuration and the figure is the growth of the peak RSS over that
  warmed-up process, i.e. on top of the model's weights (printed separately); on CUDA it is
  torch.cuda.max_memory_allocated above what was allocated before.
- On CUDA also: iterations per second of the reference and of (a), fp32 against bf16 autocast. The engine
  autocasts the CLIP forward to bf16 on CUDA (`engine.guides.clip._autocast`); its fp32 rows swap that function
  for a no-op while they run, so the engine itself needs no switch.
- Step capture: `--capture off graph compile` adds (a) and (b) in each further mode (engine/step_capture.py),
  side by side in the same rounds, each compared with the same configuration eager ("off"); captured runs add
  their steps before the steady state (warm-up, capture, compile) and drop them, and a table gives every mode's
  iterations per second. Issue 16's target: (a) >= 150 it/s at 512², 32 cutouts, bf16 on an H100/H200
  (`--device cuda --capture off graph compile --no-memory`). graph falls back to eager off CUDA.
- `--profile` adds where a step's time goes, per configuration: render and the rest before the cutouts, cutouts
  (planning, crop, augmentation), CLIP forward, loss, CLIP backward (down to the cutout pixels), cutouts backward
  (down to the image), and the rest (generator backward, Adam, bookkeeping). The engine's phases are stamped by
  wrapping its ClipBank's sampler and encoder and by gradient hooks, so its step is the real one.

Run: `.venv/bin/python bench/clip_step.py [--rounds 3] [--steps 3] [--size 512] [--cutouts 32] [--threads N]
[--device auto] [--profile] [--capture off graph compile]`
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F
from _harness import (
    StepClock,
    StepSeconds,
    Timings,
    load_warning,
    machine_line,
    peak_growth_mb,
    run_child,
    set_threads,
    step_times,
    time_round_robin,
)
from PIL import Image
from torch import nn

from engine.device import pick_device
from engine.guides import clip as clip_guides
from engine.job import PreparedJob, prepare_job
from engine.models import ClipBundle, load_clip
from engine.optimize import run
from engine.process import tune_allocator
from engine.refs import FolderSource
from engine.spec import validate_spec
from engine.step_capture import STEADY_FROM

MODEL = "ViT-B-32"
PROMPTS = (
    "a watercolour of a lighthouse at dusk",
    "a field of red poppies",
    "a stormy sea",
    "a forest in autumn",
    "a city skyline at night",
    "a desert with dunes",
    "a snowy mountain",
    "a coral reef",
)
MIN_PER_REGION = 4
LR = 0.05
WARM_UP_SIZE = 64
WARM_UP_CUTOUTS = 1  # few: the allocator keeps what the warm-up touched, and the growth would miss it
TARGET_A, TARGET_B = 1.10, 1.25

# ---- the reference loop (VQGAN-CLIP / pixray) ----------------------------------------------------------

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


class PixrayCutouts(nn.Module):
    """pixray's MakeCutouts: a Python loop of crops, each pooled to CLIP's size, then kornia on the batch."""

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0, augment: bool = True):
        super().__init__()
        self.cut_size, self.cutn, self.cut_pow = cut_size, cutn, cut_pow
        self.augs = (
            nn.Sequential(
                K.RandomAffine(degrees=30, translate=0.1, p=0.8, padding_mode="border"),
                K.RandomPerspective(distortion_scale=0.2, p=0.7),
                K.ColorJitter(hue=0.1, saturation=0.1, p=0.8),
            )
            if augment
            else None
        )
        self.noise_fac = 0.1 if augment else 0.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        side_y, side_x = image.shape[2:4]
        max_size = min(side_x, side_y)
        min_size = min(side_x, side_y, self.cut_size)
        cutouts = []
        for _ in range(self.cutn):
            size = int(torch.rand([]) ** self.cut_pow * (max_size - min_size) + min_size)
            offset_x = torch.randint(0, side_x - size + 1, ())
            offset_y = torch.randint(0, side_y - size + 1, ())
            cutout = image[:, :, offset_y : offset_y + size, offset_x : offset_x + size]
            pooled = F.adaptive_avg_pool2d(cutout, self.cut_size) + F.adaptive_max_pool2d(cutout, self.cut_size)
            cutouts.append(pooled / 2)
        batch = torch.cat(cutouts, dim=0)
        if self.augs is not None:
            batch = self.augs(batch)
        if self.noise_fac:
            facs = batch.new_empty([self.cutn, 1, 1, 1]).uniform_(0, self.noise_fac)
            batch = batch + facs * torch.randn_like(batch)
        return batch


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class Reference:
    """One text prompt over the whole image: cutouts -> normalise -> encode_image -> distance -> Adam."""

    def __init__(self, bundle: ClipBundle, size: int, cutn: int, augment: bool, bf16: bool):
        torch.manual_seed(0)
        self.model, self.device, self.bf16 = bundle.model, bundle.device, bf16
        self.make_cutouts = PixrayCutouts(bundle.image_size, cutn, augment=augment)
        self.logits = (torch.randn(1, 3, size, size) * 0.5).to(self.device).requires_grad_()
        self.mean, self.std = CLIP_MEAN.to(self.device), CLIP_STD.to(self.device)
        with torch.no_grad():
            tokens = bundle.tokenizer([PROMPTS[0]]).to(self.device)
            self.text = self.model.encode_text(tokens).float()

    def run(self, steps: int, stamp: Callable[[], None] | None = None) -> None:
        optimizer = torch.optim.Adam([self.logits], lr=LR)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            image = self.logits.sigmoid()
            cutouts = self.make_cutouts(image)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                embeddings = self.model.encode_image((cutouts - self.mean) / self.std).float()
            loss = spherical_dist_loss(embeddings[:, None], self.text[None]).mean()
            loss.backward()
            optimizer.step()
            if stamp is not None:
                stamp()


# ---- configurations --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    kind: str  # "reference" or "engine"
    regions: int = 1  # engine: 1 is a top-level text guide over the whole canvas, more are vertical strips
    augment: bool = True
    precision: str = "auto"  # "auto": the engine's own choice (bf16 autocast on CUDA, fp32 elsewhere); "fp32"
    capture: str = "off"  # engine: how its steps run (engine/step_capture.py)

    @property
    def label(self) -> str:
        if self.kind == "reference":
            name = "reference (pixray loop)"
        else:
            letter = {(True, True): "(a) ", (False, True): "(b) ", (True, False): "(c) "}.get(
                (self.regions == 1, self.augment), ""
            )
            name = f"{letter}engine, {self.regions} region{'s' if self.regions > 1 else ''}"
        name += "" if self.augment else ", no aug"
        name += "" if self.capture == "off" else f", {self.capture}"
        return name + (", fp32" if self.precision == "fp32" else "")


REFERENCE = Config("reference")
ONE_REGION = Config("engine", 1)
REFERENCE_NO_AUG = Config("reference", augment=False)
ONE_REGION_NO_AUG = Config("engine", 1, augment=False)


def all_configs(regions: int, device: torch.device, captures: tuple[str, ...] = ("off",)) -> list[Config]:
    configs = [REFERENCE, ONE_REGION, Config("engine", regions), REFERENCE_NO_AUG, ONE_REGION_NO_AUG]
    if device.type == "cuda":
        configs += [Config("reference", precision="fp32"), Config("engine", 1, precision="fp32")]
    for capture in (c for c in captures if c != "off"):
        configs += [Config("engine", 1, capture=capture), Config("engine", regions, capture=capture)]
    return configs


def baseline_of(config: Config) -> Config | None:
    """What each configuration is compared with: (a) with the reference, (b) with (a), and so on."""
    if config.kind == "reference":
        return None
    if config.capture != "off":  # a captured step against the same step eager
        return Config("engine", config.regions, config.augment, config.precision)
    if config.regions > 1:
        return Config("engine", 1, config.augment, config.precision)
    return Config("reference", augment=config.augment, precision=config.precision)


def bf16_on(config: Config, device: torch.device) -> bool:
    """Whether the CLIP forward runs under bf16 autocast: the engine's rule, the same for the reference."""
    return config.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


@contextmanager
def engine_precision(config: Config) -> Iterator[None]:
    """fp32 rows: the engine's autocast swapped for a no-op while they run."""
    if config.precision != "fp32":
        yield
        return
    original = clip_guides._autocast
    clip_guides._autocast = lambda device: nullcontext()
    try:
        yield
    finally:
        clip_guides._autocast = original


# ---- assets and specs ------------------------------------------------------------------------------------


def write_masks(folder: Path, sizes: list[int], regions: int) -> None:
    """Vertical strips, white inside, as PNGs."""
    for size in sizes:
        edges = np.linspace(0, size, regions + 1).round().astype(int)
        for index in range(regions):
            mask = np.zeros((size, size), dtype=np.uint8)
            mask[:, edges[index] : edges[index + 1]] = 255
            Image.fromarray(mask).save(folder / f"strip_{size}_{regions}_{index}.png")


def _text(index: int) -> dict:
    return {"kind": "text", "prompt": PROMPTS[index % len(PROMPTS)], "weight": 1.0}


def build_spec(config: Config, size: int, cutouts: int, minimum: int, steps: int) -> dict:
    spec: dict = {
        "version": 1,
        "width": size,
        "height": size,
        "seed": 0,
        "steps": steps,
        "generator": {"kind": "pixels"},
        "optimizer": {"kind": "adam", "lr": LR},
        "models": {"clip": {"name": MODEL, "weights": "random"}},
        "cutouts": {"count": cutouts, "min_per_region": minimum, "augment": config.augment},
        "preview_every": 0,
    }
    if config.regions == 1:
        spec["guides"] = [_text(0)]
    else:
        spec["regions"] = [
            {"name": f"strip{i}", "mask": f"strip_{size}_{config.regions}_{i}.png", "guides": [_text(i)]}
            for i in range(config.regions)
        ]
    return spec


@dataclass
class Setup:
    """Everything a configuration is built from."""

    assets: Path
    size: int
    cutouts: int
    device: torch.device

    def bundle(self) -> ClipBundle:
        return load_clip(MODEL, "random", self.device)

    def engine_job(self, config: Config, steps: int, size: int | None = None, cutouts: int | None = None):
        minimum = MIN_PER_REGION if cutouts is None else 1
        spec = build_spec(config, size or self.size, cutouts or self.cutouts, minimum, steps)
        return prepare_job(validate_spec(spec), FolderSource(self.assets), self.device)

    def reference(self, config: Config, size: int | None = None, cutouts: int | None = None) -> Reference:
        bf16 = bf16_on(config, self.device)
        return Reference(self.bundle(), size or self.size, cutouts or self.cutouts, config.augment, bf16)


def reference_steps(reference: Reference, steps: int) -> StepSeconds:
    clock = StepClock(reference.device)
    reference.run(steps, clock.stamp)
    return clock.steps()


def engine_steps(job: PreparedJob, config: Config) -> StepSeconds:
    with engine_precision(config):
        return step_times(job, config.capture)


def runners(configs: list[Config], setup: Setup, steps: int) -> dict[Config, Callable[[], StepSeconds]]:
    """A callable per configuration that runs `steps` + 1 steps and returns the timed ones."""
    out: dict[Config, Callable[[], StepSeconds]] = {}
    for config in configs:
        if config.kind == "reference":
            out[config] = partial(reference_steps, setup.reference(config), steps + 1)
        else:
            job = setup.engine_job(config, steps + STEADY_FROM[config.capture])
            out[config] = partial(engine_steps, job, config)
    return out


# ---- peak memory ------------------------------------------------------------------------------------------


def measure_memory(config: Config, setup: Setup, steps: int) -> float:
    """Peak MB of building and running one configuration, above a process that ran it on a tiny canvas."""
    if config.kind == "reference":
        setup.reference(config, WARM_UP_SIZE, WARM_UP_CUTOUTS).run(2)
        return peak_growth_mb(setup.device, lambda: setup.reference(config).run(steps))
    with engine_precision(config):
        warm_up = Config("engine", 1, config.augment, config.precision)  # one region: one cutout will do
        run(setup.engine_job(warm_up, 2, WARM_UP_SIZE, WARM_UP_CUTOUTS))
        return peak_growth_mb(setup.device, lambda: run(setup.engine_job(config, steps)))


def peak_memory(config: Config, setup: Setup, args: argparse.Namespace) -> float:
    """CUDA counts its own peak, so it is measured here; RSS needs a fresh process per configuration."""
    if setup.device.type == "cuda":
        return measure_memory(config, setup, args.memory_steps)
    arguments = ["--child", json.dumps(asdict(config)), "--assets", str(setup.assets), "--size", str(setup.size)]
    arguments += ["--cutouts", str(setup.cutouts), "--memory-steps", str(args.memory_steps)]
    arguments += ["--device", str(setup.device), "--threads", str(args.threads)]
    return float(run_child(__file__, arguments)["peak_mb"])


def model_mb(bundle: ClipBundle) -> float:
    return sum(p.numel() * p.element_size() for p in bundle.model.parameters()) / 2**20


# ---- profile: where a step's time goes --------------------------------------------------------------------

PHASES = (
    "render + rest before",
    "cutouts",
    "CLIP forward",
    "loss",
    "CLIP backward",
    "cutouts backward",
    "rest after (gen. bwd, Adam)",
)
# The stamps that bound each phase; the glue between the cutouts and the encoder counts as CLIP forward.
PHASE_BOUNDS = (
    ("start", "cutouts in"),
    ("cutouts in", "cutouts out"),
    ("cutouts out", "encode out"),
    ("encode out", "backward"),
    ("backward", "pixels grad"),
    ("pixels grad", "image grad"),
    ("image grad", "end"),
)


class PhaseClock:
    """Stamps named moments of each step; a step's phases are the gaps between consecutive stamps."""

    def __init__(self, device: torch.device):
        self.device = device
        self.steps: list[list[tuple[str, float]]] = [[]]

    def mark(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.steps[-1].append((name, time.perf_counter()))

    def hook(self, tensor: torch.Tensor, name: str) -> None:
        """Stamp when the gradient reaches `tensor` (the backward pass has got that far)."""
        if tensor.requires_grad:
            tensor.register_hook(lambda grad: self.mark(name))

    def end_step(self, *_: object) -> None:
        self.mark("end")
        self.steps.append([("end", self.steps[-1][-1][1])])

    def phases_ms(self) -> dict[str, float]:
        """Median ms of each phase over the steps after the first (which has no start stamp)."""
        per_phase: list[list[float]] = [[] for _ in PHASES]
        for stamps in self.steps[1:]:
            times = {"start": stamps[0][1], **dict(stamps[1:])}
            if not all(a in times and b in times for a, b in PHASE_BOUNDS):
                continue  # the unfinished list after the last step
            for values, (a, b) in zip(per_phase, PHASE_BOUNDS, strict=True):
                values.append(1000.0 * (times[b] - times[a]))
        medians = [statistics.median(values) if values else math.nan for values in per_phase]
        return dict(zip(PHASES, medians, strict=True))


def profile_engine(job: PreparedJob, config: Config) -> dict[str, float]:
    """The engine's own step, stamped around its ClipBank's sampler and encoder and by gradient hooks."""
    bank, clock = job.clip_bank, PhaseClock(job.device)
    assert bank is not None
    sampler, bundle = bank.cutouts, bank.bundle
    encode = bundle.encode_images

    def timed_sampler(image: torch.Tensor, *args: Any) -> Any:
        if not image.requires_grad:  # the reference losses, before the first step
            return sampler(image, *args)
        clock.mark("cutouts in")
        clock.hook(image, "image grad")
        cut = sampler(image, *args)
        clock.mark("cutouts out")
        clock.hook(cut.pixels, "pixels grad")
        return cut

    def timed_encode(pixels: torch.Tensor) -> torch.Tensor:
        if not pixels.requires_grad:
            return encode(pixels)
        clock.mark("encode in")
        embeddings = encode(pixels)
        clock.mark("encode out")
        clock.hook(embeddings, "backward")
        return embeddings

    bank.cutouts = timed_sampler  # type: ignore[assignment]
    bundle.encode_images = timed_encode  # type: ignore[method-assign]
    try:
        with engine_precision(config):
            run(job, on_progress=clock.end_step)
    finally:
        bank.cutouts = sampler
        del bundle.encode_images  # back to the class's method
    return clock.phases_ms()


def profile_reference(reference: Reference, steps: int) -> dict[str, float]:
    """The reference loop, stamped in the same places."""
    clock = PhaseClock(reference.device)
    optimizer = torch.optim.Adam([reference.logits], lr=LR)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        image = reference.logits.sigmoid()
        clock.mark("cutouts in")
        clock.hook(image, "image grad")
        cutouts = reference.make_cutouts(image)
        clock.mark("cutouts out")
        clock.hook(cutouts, "pixels grad")
        with torch.autocast(reference.device.type, dtype=torch.bfloat16, enabled=reference.bf16):
            embeddings = reference.model.encode_image((cutouts - reference.mean) / reference.std).float()
        clock.mark("encode out")
        clock.hook(embeddings, "backward")
        loss = spherical_dist_loss(embeddings[:, None], reference.text[None]).mean()
        loss.backward()
        optimizer.step()
        clock.end_step()
    return clock.phases_ms()


def profile(configs: list[Config], setup: Setup, steps: int) -> dict[Config, dict[str, float]]:
    out = {}
    for config in configs:
        if config.kind == "reference":
            out[config] = profile_reference(setup.reference(config), steps + 1)
        else:
            out[config] = profile_engine(setup.engine_job(config, steps + 1), config)
        print(f"  profiled {config.label}", file=sys.stderr, flush=True)
    return out


# ---- report ------------------------------------------------------------------------------------------------


def ratio(samples: dict[Config, Timings], config: Config, base: Config, kind: str = "wall") -> float:
    return samples[config].median_ms(kind) / samples[base].median_ms(kind)


def round_ratios(samples: dict[Config, Timings], config: Config, base: Config) -> list[float]:
    pairs = zip(samples[config].round_medians("wall"), samples[base].round_medians("wall"), strict=True)
    return [mine / theirs for mine, theirs in pairs]


def table(samples: dict[Config, Timings], memory: dict[Config, float], regions: int, device: torch.device) -> str:
    on_cpu = device.type == "cpu"
    memory_label = "peak MB (RSS growth)" if on_cpu else f"peak MB ({device.type} allocated)"
    cpu_head, cpu_rule = (" CPU ms/step | CPU ratio |", "---:|---:|") if on_cpu else ("", "")
    lines = [
        f"| config | median step ms | vs | ratio |{cpu_head} {memory_label} |",
        f"|---|---:|---|---:|{cpu_rule}---:|",
    ]
    for config, timings in samples.items():
        base = baseline_of(config)
        row = f"| {config.label} | {timings.median_ms('wall'):.0f} | "
        row += f"{base.label} | {ratio(samples, config, base):.2f} |" if base else "- | - |"
        if on_cpu:
            row += f" {timings.median_ms('cpu'):.0f} |"
            row += f" {ratio(samples, config, base, 'cpu'):.2f} |" if base else " - |"
        row += f" {memory[config]:.0f} |" if config in memory else " - |"
        lines.append(row)
    return "\n".join(lines)


def target_lines(samples: dict[Config, Timings], regions: int, device: torch.device) -> list[str]:
    checks = [
        (ONE_REGION, REFERENCE, TARGET_A, "(a) one region <= {t}x the reference"),
        (Config("engine", regions), ONE_REGION, TARGET_B, f"(b) {regions} regions <= {{t}}x (a)"),
        (ONE_REGION_NO_AUG, REFERENCE_NO_AUG, TARGET_A, "(c) no aug: engine <= {t}x the reference (same target)"),
    ]
    lines = []
    for config, base, target, text in checks:
        value = ratio(samples, config, base)
        verdict = "PASS" if value <= target else "FAIL"
        per_round = ", ".join(f"{r:.2f}" for r in round_ratios(samples, config, base))
        line = f"target {text.format(t=target)}: {verdict} (wall {value:.2f}; per round: {per_round}"
        line += f"; CPU time {ratio(samples, config, base, 'cpu'):.2f})" if device.type == "cpu" else ")"
        lines.append(line)
    return lines


def precision_table(samples: dict[Config, Timings]) -> str:
    """CUDA: iterations per second, bf16 autocast (the engine's default there) against fp32."""
    lines = ["| config | bf16 autocast it/s | fp32 it/s | bf16 speed-up |", "|---|---:|---:|---:|"]
    for auto in (REFERENCE, ONE_REGION):
        fp32 = Config(auto.kind, auto.regions, auto.augment, "fp32")
        fast, slow = 1000.0 / samples[auto].median_ms("wall"), 1000.0 / samples[fp32].median_ms("wall")
        lines.append(f"| {auto.label} | {fast:.2f} | {slow:.2f} | {fast / slow:.2f}x |")
    return "\n".join(lines)


def capture_table(samples: dict[Config, Timings], captures: tuple[str, ...]) -> str:
    """Iterations per second of the engine's configurations in each capture mode, and the speed-up over off."""
    engine = [c for c in samples if c.kind == "engine" and c.capture == "off" and c.precision == "auto" and c.augment]
    head = " | ".join(f"{capture} it/s" for capture in captures)
    lines = [f"| config | {head} | best speed-up |", "|---|" + "---:|" * (len(captures) + 1)]
    for config in engine:
        rates = [1000.0 / samples[Config("engine", config.regions, capture=c)].median_ms("wall") for c in captures]
        cells = " | ".join(f"{rate:.1f}" for rate in rates)
        lines.append(f"| {config.label} | {cells} | {max(rates) / rates[0]:.2f}x |")
    return "\n".join(lines)


def profile_table(profiles: dict[Config, dict[str, float]]) -> str:
    lines = [
        "| config | " + " | ".join(PHASES) + " | sum |",
        "|---|" + "---:|" * (len(PHASES) + 1),
    ]
    for config, phases in profiles.items():
        cells = " | ".join(f"{phases[name]:.0f}" for name in PHASES)
        lines.append(f"| {config.label} | {cells} | {sum(phases.values()):.0f} |")
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds over all configurations")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (one warm-up step is added)")
    parser.add_argument("--size", type=int, default=512, help="square canvas side")
    parser.add_argument("--cutouts", type=int, default=32, help="cutouts per step, all regions together")
    parser.add_argument("--regions", type=int, default=8, help="vertical strips of configuration (b)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--memory-steps", type=int, default=1, help="steps per memory measurement")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory runs")
    parser.add_argument("--profile", action="store_true", help="also break each configuration's step into phases")
    parser.add_argument(
        "--capture", nargs="+", default=["off"], choices=["off", "graph", "compile"],
        help="step capture modes of the engine's (a) and (b), measured side by side (default off)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: JSON Config, measure memory only
    parser.add_argument("--assets", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child_main(args: argparse.Namespace) -> None:
    setup = Setup(args.assets, args.size, args.cutouts, pick_device(args.device))
    peak = measure_memory(Config(**json.loads(args.child)), setup, args.memory_steps)
    print(json.dumps({"peak_mb": peak}))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tune_allocator()  # as the engine's own entry points do
    set_threads(args.threads)
    if args.child:
        child_main(args)
        return
    device = pick_device(args.device)
    print(machine_line(device))
    warning = load_warning(device)
    if warning:
        print(warning)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="regia-bench-") as tmp:
        setup = Setup(Path(tmp), args.size, args.cutouts, device)
        write_masks(setup.assets, [WARM_UP_SIZE, args.size], args.regions)
        bundle = setup.bundle()
        print(
            f"model: {MODEL} with random weights ({model_mb(bundle):.0f} MB of weights, loaded before every "
            f"measurement), CLIP input {bundle.image_size}px; canvas {args.size}x{args.size}, {args.cutouts} cutouts "
            f"per step; {args.steps} timed steps (+1 warm-up) per run, {args.rounds} rounds, round robin; "
            f"memory: {args.memory_steps} step(s) per measurement\n",
            flush=True,
        )
        captures = tuple(dict.fromkeys(["off", *args.capture]))  # off always: the captured modes' yardstick
        configs = all_configs(args.regions, device, captures)
        samples = time_round_robin(runners(configs, setup, args.steps), args.rounds)
        memory: dict[Config, float] = {}
        eager = [config for config in configs if config.capture == "off"]  # memory and profiles: eager steps
        if not args.no_memory:
            for config in eager:
                memory[config] = peak_memory(config, setup, args)
        profiles = profile(eager, setup, args.steps) if args.profile else {}
    print(table(samples, memory, args.regions, device))
    print()
    print("\n".join(target_lines(samples, args.regions, device)))
    if device.type == "cuda":
        print()
        print(precision_table(samples))
    if len(captures) > 1:
        print("\nstep capture (iterations per second; graph is eager off CUDA):\n")
        print(capture_table(samples, captures))
    if profiles:
        print("\nwhere a step's time goes (median ms per phase):\n")
        print(profile_table(profiles))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
