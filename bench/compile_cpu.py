"""Does torch.compile help the engine's CPU step? The style job's step, eager against the feature net compiled.

What is measured
- A style job (an init photo, one style guide, tv 0.1) at 256² (`--size`), `--steps` steps, prepared once per
  run and run by engine.optimize.run; the step time is the gap between progress callbacks, the first step
  dropped (for the compiled run, the first step is the compile and is reported on its own).
- "eager": the job as the engine runs it. "compiled": the feature net's forward (the convolutions and the
  features every style, content and embolden guide reads; most of a style step) wrapped in torch.compile
  (inductor, default mode, static shapes), in the same process after the eager run.
- The results: the largest difference between the two final images (0..255); compiled kernels reorder float
  arithmetic, so equality is not expected.
- One process, eager first; `--threads` torch threads (default 1).

Run: `.venv/bin/python bench/compile_cpu.py [--size 256] [--steps 40] [--threads 1]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import jobkit  # test images on disk

from engine.job import prepare_job
from engine.optimize import run
from engine.refs import FolderSource
from engine.spec import validate_spec


def one_run(folder: Path, size: int, steps: int, compiled: bool) -> tuple[list[float], np.ndarray, float]:
    spec = validate_spec({
        "version": 1, "width": size, "height": size, "steps": steps, "preview_every": 0,
        "init": {"image": "init.png"}, "guides": [{"kind": "style", "image": "brick.png"}], "losses": {"tv": 0.1},
    })  # fmt: skip
    job = prepare_job(spec, FolderSource(folder), torch.device("cpu"))
    if compiled:
        job.net.forward = torch.compile(job.net.forward, dynamic=False)
    stamps: list[float] = []
    start = time.perf_counter()
    result = run(job, on_progress=lambda progress: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]
    return gaps, result.image, gaps[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="regia-compile-") as tmp:
        folder = Path(tmp)
        jobkit.save(folder / "init.png", jobkit.astronaut(args.size))
        jobkit.save(folder / "brick.png", jobkit.brick_texture(args.size))
        eager_gaps, eager_image, eager_first = one_run(folder, args.size, args.steps, compiled=False)
        compiled_gaps, compiled_image, compile_first = one_run(folder, args.size, args.steps, compiled=True)
    eager, compiled = statistics.median(eager_gaps[1:]), statistics.median(compiled_gaps[1:])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# torch.compile on the CPU: style job at {args.size}², {args.steps} steps, {args.threads} thread(s), "
          f"torch {torch.__version__}, load {load}")  # fmt: skip
    print()
    print("| run | first step (s) | median step (ms) | ratio to eager |")
    print("|---|---:|---:|---:|")
    print(f"| eager | {eager_first:.2f} | {eager * 1000:.1f} | 1.00 |")
    print(f"| feature net compiled | {compile_first:.2f} | {compiled * 1000:.1f} | {compiled / eager:.2f} |")
    saved = eager - compiled
    break_even = (compile_first - eager_first) / saved if saved > 0 else float("inf")
    print()
    print(f"steps before the compile pays for itself: {break_even:.0f}")
    diff = int(np.abs(eager_image.astype(int) - compiled_image.astype(int)).max())
    print(f"largest difference between the final images: {diff}/255")


if __name__ == "__main__":
    main()
