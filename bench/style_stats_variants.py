"""Where a style step's time goes, and what two changes to the masked Gram statistics would save.

A companion to step_time.py, for the "3 masked style regions <= 1.3x one style" target. It runs
the style path of one engine step (the feature net on the jittered image, region weights,
masked statistics, style distance, backward) on jobs that step_time.py builds, in pieces:
- the feature net alone, forward and backward;
- `masks_for` on the rolled masks, which the engine redoes every step for every layer;
- `engine.features.masked_stats`, forward and backward: it builds an (R, C, P) weighted copy of
  each feature map, so its cost grows with R times the whole canvas;
- a prototype of the same statistics that gathers each region's support (weights > 0) once and
  uses a symmetric Gram (B Bᵀ with B = F·sqrt(w), backward (G + Gᵀ) B: one matrix product
  instead of two), so the cost grows with the regions' total area instead;
- the whole style path with the engine's functions, and with the prototype plus region weights
  pooled once per job (as they would be if cached per jitter shift);
- the whole path with one batched `style_distance` call for all regions (targets stacked once
  per job) instead of one call per StyleTerm: on a GPU, small steps are bound by kernel launches.
The prototype's statistics are checked against the engine's before anything is timed.

Cases are interleaved for several rounds and the median is shown. On CPU the figure is the
process's CPU time (robust to other processes on a shared machine), on CUDA wall time after a
synchronise. Run: `.venv/bin/python bench/style_stats_variants.py [--sizes 256 512] [--rounds 9]`
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from step_time import WARM_UP_SIZE, Case, machine_line, prepare, set_threads, write_assets

from engine.device import pick_device
from engine.features import masked_stats, masks_for, style_distance
from engine.job import PreparedJob

SHIFT = (4, 4)  # one jitter shift, as the loop draws them
CONFIGS = ("1 style", "3 regions")
Stats = list[tuple[torch.Tensor, torch.Tensor]]
StatsFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class SymmetricGram(torch.autograd.Function):
    """B Bᵀ whose backward is one product, (G + Gᵀ) B, where autograd would do two."""

    @staticmethod
    def forward(ctx, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(b)
        return b @ b.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (b,) = ctx.saved_tensors
        return (grad + grad.t()) @ b


def support_stats(feature: torch.Tensor, weights: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Same result as masked_stats: (R, C) means and (R, C, C) Grams of a (1, C, H, W) map under
    (R, P) weights, but each region's Gram only over the pixels where its weight is above 0."""
    flat = feature.flatten(2)[0]  # (C, P)
    total = weights.sum(1).clamp_min(eps)
    mean = (weights @ flat.t()) / total[:, None]
    support = [(row > 0).nonzero().squeeze(1) for row in weights]
    if len(support) == 1 and support[0].numel() == weights.shape[1]:
        parts = [flat * weights[0].sqrt()]
    else:  # one gather for all regions, so the backward is one scatter, not one per region
        index = torch.cat(support)
        scale = torch.cat([row.index_select(0, s) for row, s in zip(weights, support, strict=True)]).sqrt()
        parts = list((flat.index_select(1, index) * scale).split([s.numel() for s in support], dim=1))
    gram = torch.stack([SymmetricGram.apply(part) for part in parts])
    return mean, gram / total[:, None, None]


# ---- the pieces of a style step -------------------------------------------------------------


class StylePath:
    """The style part of one step of a prepared job, with its pieces callable one by one."""

    def __init__(self, job: PreparedJob):
        assert job.net is not None and job.stats_masks is not None
        self.net = job.net
        self.masks = job.stats_masks
        self.targets = [term.target for term in job.terms if term.kind == "style"]
        self.stacked_targets = [
            (torch.cat([t[layer][0] for t in self.targets]), torch.cat([t[layer][1] for t in self.targets]))
            for layer in range(len(self.targets[0]))
        ]
        size = job.spec.height
        self.image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(job.device)
        with torch.no_grad():
            self.features = self.net(torch.roll(self.image, SHIFT, dims=(-2, -1)))
            self.weights = self.region_weights(self.features)

    def region_weights(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        masks = torch.roll(self.masks, SHIFT, dims=(-2, -1))
        return [masks_for(feature, masks) for feature in features]

    def loss(self, stats: Stats) -> torch.Tensor:
        """As the engine's StyleTerms do it: one style_distance call per region."""
        total = torch.zeros((), device=self.image.device)
        for row, target in enumerate(self.targets):
            total = total + style_distance([(m[row : row + 1], g[row : row + 1]) for m, g in stats], target)[0]
        return total

    def batched_loss(self, stats: Stats) -> torch.Tensor:
        """One style_distance call for all regions, against their targets stacked once per job."""
        return style_distance(stats, self.stacked_targets).sum()

    def net_only(self) -> None:
        features = self.net(torch.roll(self.image.clone().requires_grad_(True), SHIFT, dims=(-2, -1)))
        sum(feature.pow(2).mean() for feature in features).backward()

    def weights_only(self) -> None:
        with torch.no_grad():
            self.region_weights(self.features)

    def stats_only(self, stats_fn: StatsFn) -> Callable[[], None]:
        leaves = [feature.clone().requires_grad_(True) for feature in self.features]

        def step() -> None:
            self.loss([stats_fn(f, w) for f, w in zip(leaves, self.weights, strict=True)]).backward()

        return step

    def whole(self, stats_fn: StatsFn, pooled_once: bool, batched: bool = False) -> Callable[[], None]:
        loss = self.batched_loss if batched else self.loss

        def step() -> None:
            image = self.image.clone().requires_grad_(True)
            features = self.net(torch.roll(image, SHIFT, dims=(-2, -1)))
            weights = self.weights if pooled_once else self.region_weights(features)
            loss([stats_fn(f, w) for f, w in zip(features, weights, strict=True)]).backward()

        return step


def check_prototype(path: StylePath) -> None:
    """The prototypes must give the engine's statistics, loss and gradient before timing."""
    stats = [masked_stats(f, w) for f, w in zip(path.features, path.weights, strict=True)]
    assert torch.allclose(path.loss(stats), path.batched_loss(stats), rtol=1e-5), "batched distance differs"
    for feature, weights in zip(path.features, path.weights, strict=True):
        (m0, g0), (m1, g1) = masked_stats(feature, weights), support_stats(feature, weights)
        scale = g0.abs().amax().clamp_min(1e-12)
        assert torch.allclose(m0, m1, rtol=1e-4, atol=1e-6), "means differ"
        assert ((g0 - g1).abs().amax() / scale) < 1e-4, "Grams differ"
    b = torch.randn(4, 30, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(SymmetricGram.apply, (b,))


# ---- timing ---------------------------------------------------------------------------------


def timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    def measure(fn: Callable[[], None]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize(device)
            return time.perf_counter() - start
        start = time.process_time()
        fn()
        return time.process_time() - start

    return measure


def cases_for(path: StylePath) -> dict[str, Callable[[], None]]:
    return {
        "net forward+backward only": path.net_only,
        "masks_for on rolled masks (no grad)": path.weights_only,
        "stats+loss fwd+bwd: engine masked_stats": path.stats_only(masked_stats),
        "stats+loss fwd+bwd: support gather + symmetric Gram": path.stats_only(support_stats),
        "WHOLE style path: engine": path.whole(masked_stats, pooled_once=False),
        "WHOLE style path: prototype + weights pooled once": path.whole(support_stats, pooled_once=True),
        "WHOLE style path: engine stats + one batched style_distance": path.whole(
            masked_stats, pooled_once=False, batched=True
        ),
        "WHOLE style path: prototype + pooled once + batched distance": path.whole(
            support_stats, pooled_once=True, batched=True
        ),
    }


def run_size(size: int, assets: Path, device: torch.device, rounds: int) -> dict[tuple[str, str], float]:
    measure = timer(device)
    paths = {config: StylePath(prepare(Case(size, "pixels", config), assets, 2, device)) for config in CONFIGS}
    check_prototype(paths["3 regions"])
    work = {(config, name): fn for config in CONFIGS for name, fn in cases_for(paths[config]).items()}
    for fn in work.values():  # warm-up
        fn()
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in work}
    for _ in range(rounds):
        for key, fn in work.items():
            samples[key].append(measure(fn))
    return {key: 1000.0 * statistics.median(values) for key, values in samples.items()}


def report(size: int, medians: dict[tuple[str, str], float]) -> list[str]:
    lines = [f"| {size} | piece | 1 style ms | 3 regions ms | 3 regions / 1 style |", "|---:|---|---:|---:|---:|"]
    names = dict.fromkeys(name for _, name in medians)
    for name in names:
        one, three = medians[("1 style", name)], medians[("3 regions", name)]
        lines.append(f"| {size} | {name} | {one:.1f} | {three:.1f} | {three / one:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    set_threads(args.threads)
    device = pick_device(args.device)
    print(machine_line(device))
    print(f"{'CPU time of this process' if device.type == 'cpu' else 'wall time'}, median of {args.rounds} rounds\n")
    with tempfile.TemporaryDirectory(prefix="regia-bench-") as tmp:
        assets = Path(tmp)
        write_assets(assets, [WARM_UP_SIZE, *args.sizes])
        for size in args.sizes:
            print("\n".join(report(size, run_size(size, assets, device, args.rounds))), flush=True)
            print()


if __name__ == "__main__":
    main()
