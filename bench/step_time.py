"""Step time and peak memory of the engine's optimisation loop, per generator and guide set.

What is measured
- The real engine step: jobs are built from spec dicts through `engine.spec.validate_spec` and
  `engine.job.prepare_job`, then run by `engine.optimize.run` itself. The time of one step is the
  gap between two consecutive progress callbacks (render, composite, every guide loss, backward,
  optimiser step). Previews are off, and on CUDA the callback synchronises before it stamps, so
  the gaps are the steps' real cost. The first step of every run (warm-up, loss scales) is dropped.
  On CPU the table also gives the process's CPU time per step, which other processes on a shared
  machine barely disturb (with one torch thread it equals the step's own compute).
- Configurations at each size and for each generator (`pixels`, `fourier`), all with an init
  image (astronaut) and tv 0.1:
  - "1 style": no regions, one top-level style guide over the whole canvas (the baseline);
  - "3 regions": three feathered vertical thirds, each with its own style image;
  - "tv only": no guides except tv, i.e. the cost of the generator and the loop themselves.
- The machine is noisy, so figures are ratios measured side by side in one run: every round
  runs every configuration once (round robin, the order rotated each round), and the table
  shows each configuration's median step over all rounds and its ratio to "1 style" at the
  same size and generator.
- Target (DESIGN.md, "Inside the engine"): features and masked Gram statistics are computed once
  per step for all regions, so three masked style regions cost at most 1.3x one unmasked style
  guide at the same size.
- Threads: `--threads N` sets torch's intra-op threads (default: torch's own choice). On a
  shared CPU whose other processes keep the cores busy, multi-threaded steps wait on each other
  at every barrier and can run tens of times slower; the machine line prints the load average,
  and `--threads 1` gives stable figures there.
- Step capture: `--capture off graph compile` runs every configuration in each mode (engine/step_capture.py),
  side by side in the same rounds; ratios compare a configuration with "1 style" in the same mode, and the
  "vs off" column a mode with off in the same configuration. A captured run adds its steps before the steady state
  (graph's warm-up and capture, compile's compile) and drops them. graph falls back to eager off CUDA. Issue 16's
  target on a GPU: 3 regions at 1024² <= 1.15x one style (`--sizes 1024 --capture off graph`).
- Peak memory: each configuration is prepared and run again (after a warm-up run of the same
  configuration on a tiny canvas). On CPU this happens in a child process of its own, and the
  figure is the growth of the peak RSS (VmHWM, reset through /proc/self/clear_refs; ru_maxrss
  elsewhere) over the idle engine process, preparing the job included. On CUDA it happens in
  this process and the figure is torch.cuda.max_memory_allocated above what was allocated before.

Run: `.venv/bin/python bench/step_time.py [--sizes 256 512] [--steps 3] [--rounds 3] [--device auto]
[--capture off graph compile]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _harness import (
    Timings,
    cpu_model,  # noqa: F401  (first_preview.py and server_latency.py import it from here)
    load_warning,
    machine_line,
    peak_growth_mb,
    run_child,
    set_threads,
    step_times,
    time_round_robin,
)
from PIL import Image
from skimage import data

from engine.device import pick_device
from engine.job import PreparedJob, prepare_job
from engine.optimize import run
from engine.process import tune_allocator
from engine.refs import FolderSource
from engine.spec import validate_spec
from engine.step_capture import STEADY_FROM

GENERATORS = ("pixels", "fourier")
CONFIGS = ("1 style", "3 regions", "tv only")
BASELINE = "1 style"
TARGET_CONFIG, TARGET_RATIO = "3 regions", 1.3
FEATHER = 8
TV_WEIGHT = 0.1
BASELINE_STYLE = "hubble"
REGION_STYLES = ("brick", "grass", "coffee")
WARM_UP_SIZE = 32


@dataclass(frozen=True)
class Case:
    size: int
    generator: str
    config: str
    capture: str = "off"

    @property
    def label(self) -> str:
        return f"{self.size} {self.generator} {self.config} {self.capture}"


# ---- assets and specs ---------------------------------------------------------------------


def _save(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path)


def write_assets(folder: Path, sizes: list[int]) -> None:
    """Init image and masks at every size, and the style references (any size), as PNGs."""
    astronaut = Image.fromarray(data.astronaut())
    for size in sizes:
        _save(folder / f"init_{size}.png", np.asarray(astronaut.resize((size, size), Image.Resampling.LANCZOS)))
        edges = np.linspace(0, size, 4).round().astype(int)
        for index in range(3):
            mask = np.zeros((size, size), dtype=np.uint8)
            mask[:, edges[index] : edges[index + 1]] = 255
            _save(folder / f"mask_{size}_{index}.png", mask)
    styles = {
        "hubble": data.hubble_deep_field()[100:700, 200:800],
        "brick": data.brick(),
        "grass": data.grass(),
        "coffee": data.coffee(),
    }
    for name, pixels in styles.items():
        _save(folder / f"style_{name}.png", pixels)


def _style(name: str) -> dict:
    return {"kind": "style", "image": f"style_{name}.png", "weight": 1.0}


def build_spec(case: Case, steps: int) -> dict:
    """The spec dict of one configuration; image references are relative to the asset folder."""
    spec: dict = {
        "version": 1,
        "width": case.size,
        "height": case.size,
        "seed": 0,
        "steps": steps,
        "generator": {"kind": case.generator},
        "init": {"image": f"init_{case.size}.png"},
        "losses": {"tv": TV_WEIGHT},
        "preview_every": 0,
    }
    if case.config == "1 style":
        spec["guides"] = [_style(BASELINE_STYLE)]
    elif case.config == "3 regions":
        spec["regions"] = [
            {"name": f"third{i}", "mask": f"mask_{case.size}_{i}.png", "feather": FEATHER, "guides": [_style(name)]}
            for i, name in enumerate(REGION_STYLES)
        ]
    return spec


def prepare(case: Case, assets: Path, steps: int, device: torch.device) -> PreparedJob:
    return prepare_job(validate_spec(build_spec(case, steps)), FolderSource(assets), device)


def all_cases(sizes: list[int], captures: list[str]) -> list[Case]:
    return [
        Case(size, gen, config, capture)
        for size in sizes
        for gen in GENERATORS
        for config in CONFIGS
        for capture in captures
    ]


# ---- timing -------------------------------------------------------------------------------


def baseline_of(case: Case) -> Case:
    return Case(case.size, case.generator, BASELINE, case.capture)


def eager_of(case: Case) -> Case:
    return Case(case.size, case.generator, case.config, "off")


def ratio(samples: dict[Case, Timings], case: Case, kind: str = "wall") -> float:
    return samples[case].median_ms(kind) / samples[baseline_of(case)].median_ms(kind)


def round_ratios(samples: dict[Case, Timings], case: Case, kind: str = "wall") -> list[float]:
    """The case's ratio to its baseline within each round: how stable the ratio is."""
    pairs = zip(samples[case].round_medians(kind), samples[baseline_of(case)].round_medians(kind), strict=True)
    return [mine / base for mine, base in pairs]


# ---- peak memory (on CPU, a child process per case) -------------------------------------------------


def _warm_up(case: Case, assets: Path, device: torch.device) -> None:
    """Run the same configuration once on a tiny canvas, so that lazy imports, kernels, thread
    pools and the shared feature net are in place: the baseline is an engine that has run a job."""
    run(prepare(Case(WARM_UP_SIZE, case.generator, case.config), assets, 2, device))


def measure_memory(case: Case, assets: Path, steps: int, device: torch.device) -> float:
    """Peak MB of preparing and running one job, above the idle (warmed-up) process."""
    _warm_up(case, assets, device)
    return peak_growth_mb(device, lambda: run(prepare(case, assets, steps, device)))


def peak_memory(case: Case, assets: Path, args: argparse.Namespace, device: torch.device) -> float:
    """CUDA counts its own peak, so it is measured here; RSS needs a fresh process per case."""
    if device.type == "cuda":
        return measure_memory(case, assets, args.memory_steps + 1, device)
    return memory_in_child(case, assets, args, device)


def memory_in_child(case: Case, assets: Path, args: argparse.Namespace, device: torch.device) -> float:
    arguments = ["--child", json.dumps(asdict(case)), "--assets", str(assets)]
    arguments += ["--steps", str(args.memory_steps), "--device", str(device), "--threads", str(args.threads)]
    return float(run_child(__file__, arguments)["peak_mb"])


# ---- report -------------------------------------------------------------------------------


def table(samples: dict[Case, Timings], memory: dict[Case, float], device: torch.device) -> str:
    """Markdown; on CPU also the process CPU time per step, which other processes barely disturb."""
    on_cpu = device.type == "cpu"
    memory_label = "peak MB (RSS growth)" if on_cpu else f"peak MB ({device.type} allocated)"
    cpu_head, cpu_rule = (" CPU ms/step | CPU ratio |", "---:|---:|") if on_cpu else ("", "")
    lines = [
        f"| size | generator | config | capture | median step ms | vs off | ratio vs {BASELINE} |{cpu_head} "
        f"{memory_label} |",
        f"|---:|---|---|---|---:|---:|---:|{cpu_rule}---:|",
    ]
    for case, timings in samples.items():
        eager = samples.get(eager_of(case))
        vs_off = f"{timings.median_ms('wall') / eager.median_ms('wall'):.2f}" if eager else "-"
        row = f"| {case.size} | {case.generator} | {case.config} | {case.capture} | {timings.median_ms('wall'):.1f} | "
        row += f"{vs_off} | {ratio(samples, case):.2f} |"
        if on_cpu:
            row += f" {timings.median_ms('cpu'):.1f} | {ratio(samples, case, 'cpu'):.2f} |"
        row += f" {memory[case]:.0f} |" if case in memory else " - |"
        lines.append(row)
    return "\n".join(lines)


def target_lines(samples: dict[Case, Timings], sizes: list[int], device: torch.device) -> list[str]:
    """The 1.3x check on the wall-clock medians; the worst generator at each size decides."""
    worst: dict[int, float] = {}
    details = []
    for case in samples:
        if case.config != TARGET_CONFIG:
            continue
        worst[case.size] = max(worst.get(case.size, 0.0), ratio(samples, case))
        per_round = ", ".join(f"{r:.2f}" for r in round_ratios(samples, case))
        detail = (
            f"  {case.size} {case.generator} {case.capture}: wall {ratio(samples, case):.2f} (per round: {per_round})"
        )
        if device.type == "cpu":
            detail += f"; CPU time {ratio(samples, case, 'cpu'):.2f}"
        details.append(detail)
    verdict = "PASS" if all(r <= TARGET_RATIO for r in worst.values()) else "FAIL"
    at = ", ".join(f"{worst[size]:.2f} at {size}" for size in sizes)
    head = f"target 3 regions <= {TARGET_RATIO}x one style: {verdict} (ratio {at}; worst generator per size)"
    return [head, *details]


# ---- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square canvas sides")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (one warm-up step is added)")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds over all configurations")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument(
        "--capture", nargs="+", default=["off"], choices=["off", "graph", "compile"],
        help="step capture modes, measured side by side (default off)",
    )  # fmt: skip
    parser.add_argument("--memory-steps", type=int, default=2, help="steps per memory child (after warm-up)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory children")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: JSON Case, measure memory only
    parser.add_argument("--assets", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child_main(args: argparse.Namespace) -> None:
    case = Case(**json.loads(args.child))
    peak = measure_memory(case, args.assets, args.steps + 1, pick_device(args.device))
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
    print(
        f"steps: {args.steps} timed (+1 warm-up) per run, {args.rounds} rounds, round robin; "
        f"memory: {args.memory_steps} steps (+1) per measurement\n",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="regia-bench-") as tmp:
        assets = Path(tmp)
        write_assets(assets, [WARM_UP_SIZE, *args.sizes])
        cases = all_cases(args.sizes, args.capture)
        jobs = {case: prepare(case, assets, args.steps + STEADY_FROM[case.capture], device) for case in cases}
        runners = {case: partial(step_times, job, case.capture) for case, job in jobs.items()}
        samples = time_round_robin(runners, args.rounds)
        del jobs
        memory: dict[Case, float] = {}
        if not args.no_memory:
            for case in (case for case in cases if case.capture == "off"):  # memory is measured eager
                memory[case] = peak_memory(case, assets, args, device)
    print(table(samples, memory, device))
    print()
    print("\n".join(target_lines(samples, args.sizes, device)))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
