"""Time to the first preview, as the artist sees it: from JobSession.start() to the first Preview event.

What is measured
- One managed local engine (addon/engine_process.ManagedEngine, the add-on's own launcher) on the CPU, started once;
  the time until it is ready is printed too.
- Each run is one JobSession (addon/job_session.py) as the add-on sends it: a 256x256 init and two masks, new in
  every run (their pixels differ, so the worker HEADs and PUTs all three), and two style textures that the engine
  keeps after the first run (HEAD finds them). The spec is the add-on's default shape: two feathered style regions,
  preview every 10 steps. The clock starts at start() and stops when drain() (called every 10 ms, as a timer on
  Blender's main thread would) returns the event: upload, submit, queueing, preparing the job, 10 steps, the
  session's poll interval and the preview's PNG all count.
- The first job of a fresh engine pays one-time costs (feature weights, allocator warm-up): it is printed apart,
  as "cold"; the table's median is over the runs after it.
- Also printed: encoding the three PNGs with addon/png_codec.py, which the add-on does on the main thread before
  the session starts (not inside the timed span).
- Columns: Submitted (blobs checked and sent, job queued), the first status past step 1 (the job is prepared and
  running), the first Preview, Done.
- Threads: `--threads N` sets OMP/MKL threads for the engine (default 1: on a shared 2-core machine, more threads
  wait on each other and the figures swing several-fold; `--threads 0` leaves torch's own choice).
- Target: first preview < 2 s (median of the warm runs).

Run: `.venv/bin/python bench/first_preview.py [--runs 5] [--size 256] [--steps 100] [--threads N]`
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import jobkit  # test images (skimage photos); imports torch in this process only, not the engine's
from regia_package import addon_module
from step_time import cpu_model

REPO = jobkit.REPO
TARGET_S = 2.0


engine_process = addon_module("engine_process")
job_session = addon_module("job_session")
png_codec = addon_module("png_codec")


@dataclass
class Run:
    submitted: float
    first_step: float | None
    first_preview: float | None
    done: float | None
    uploaded: int
    skipped: int
    outcome: str


def run_images(size: int, run: int) -> dict[str, np.ndarray]:
    """Init and masks unique to this run (one pixel of each differs), textures shared by every run."""
    init = jobkit.astronaut(size).copy()
    left = jobkit.rect_mask(size, 0, 0, size, size // 2)
    right = jobkit.rect_mask(size, 0, size // 2, size, size)
    for pixels in (init, left, right):
        pixels.reshape(-1)[run % pixels.size] ^= 1
    return {
        "init": init,
        "left": left,
        "right": right,
        "brick": jobkit.brick_texture(96),
        "grass": jobkit.grass_texture(96),
    }


def encode(images: dict[str, np.ndarray]) -> tuple[dict[str, str], dict[str, bytes], float]:
    """PNG-encode the per-run images (timed: the main thread does this) and the textures."""
    refs, blobs, seconds = {}, {}, 0.0
    for name, pixels in images.items():
        started = time.perf_counter()
        data = png_codec.encode_png(pixels)
        if name in ("init", "left", "right"):
            seconds += time.perf_counter() - started
        sha = png_codec.sha256_hex(data)
        refs[name], blobs[sha] = f"blob:{sha}", data
    return refs, blobs, seconds


def spec(refs: dict[str, str], size: int, steps: int, preview_every: int) -> dict[str, Any]:
    return jobkit.spec(
        size,
        steps,
        init={"image": refs["init"]},
        preview_every=preview_every,
        regions=[
            {"name": "left", "mask": refs["left"], "feather": 8, "guides": [{"kind": "style", "image": refs["brick"]}]},
            {
                "name": "right",
                "mask": refs["right"],
                "feather": 8,
                "guides": [{"kind": "style", "image": refs["grass"]}],
            },
        ],
    )


def one_run(engine: Any, job: dict[str, Any], blobs: dict[str, bytes], poll: float | None) -> Run:
    kwargs = {} if poll is None else {"poll_interval": poll}
    session = job_session.JobSession(engine.client(), job, blobs, **kwargs)
    times: dict[str, float] = {}
    started = time.perf_counter()
    session.start()
    while not session.finished or not times.get("final"):
        for event in session.drain():
            now = time.perf_counter() - started
            name = type(event).__name__
            times.setdefault(name, now)
            if isinstance(event, job_session.Progress) and event.status.get("step", 0) >= 1:
                times.setdefault("step", now)
            if isinstance(event, job_session.FINAL_EVENTS):
                times["final"] = now
                if not isinstance(event, job_session.Done):
                    print(f"  run ended with {event}", file=sys.stderr)
        time.sleep(0.01)
    return Run(
        submitted=times.get("Submitted", float("nan")),
        first_step=times.get("step"),
        first_preview=times.get("Preview"),
        done=times.get("Done"),
        uploaded=len(session.uploaded),
        skipped=len(session.skipped),
        outcome=type(session.outcome).__name__,
    )


COLUMNS = ("run", "submitted s", "first step s", "first preview s", "done s", "blobs")
WIDTHS = (8, 11, 12, 15, 6, 16)


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def line(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, WIDTHS, strict=True)) + " |"


def row(label: str, run: Run) -> str:
    values = (run.submitted, run.first_step, run.first_preview, run.done)
    return line((label, *map(seconds, values), f"{run.uploaded} sent, {run.skipped} kept"))


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--preview-every", type=int, default=10, help="the add-on's default (10)")
    parser.add_argument("--poll", type=float, default=None, help="session poll interval (default: JobSession's)")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads for the engine (0: torch's choice)")
    args = parser.parse_args()

    env = {} if not args.threads else {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="regia-first-preview-") as tmp:
        engine = engine_process.ManagedEngine(sys.executable, REPO, Path(tmp) / "data", device="cpu", env=env)
        started = time.perf_counter()
        engine.start()
        try:
            engine.wait_ready(180)
            ready = time.perf_counter() - started
            health = engine.client(timeout=10).health()
            load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
            poll = args.poll if args.poll is not None else job_session.JobSession.__init__.__defaults__[0]
            print(
                f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {health.get('torch')}, engine device "
                f"{health.get('device')}, threads {args.threads or 'torch default'}, python "
                f"{platform.python_version()}, load average {load}"
            )
            print(
                f"job: {args.size}x{args.size}, {args.steps} steps, preview every {args.preview_every}, init + 2 "
                f"feathered style regions; session poll {poll:.2f} s, drain every 10 ms"
            )
            print(f"engine ready {ready:.2f} s after ManagedEngine.start()\n")

            runs: list[Run] = []
            encode_times: list[float] = []
            for index in range(args.runs + 1):  # run 0: the cold one
                refs, blobs, encoded = encode(run_images(args.size, index))
                encode_times.append(encoded)
                runs.append(one_run(engine, spec(refs, args.size, args.steps, args.preview_every), blobs, args.poll))
                print(f"  run {index}/{args.runs} done", file=sys.stderr, flush=True)
        finally:
            engine.stop()

    print(line(COLUMNS))
    print("|" + "|".join("-" * (width + 2) for width in WIDTHS) + "|")
    print(row("cold", runs[0]))
    for index, run in enumerate(runs[1:], 1):
        print(row(f"warm {index}", run))
    warm = runs[1:]
    summary = Run(
        submitted=statistics.median(r.submitted for r in warm),
        first_step=median([r.first_step for r in warm]),
        first_preview=median([r.first_preview for r in warm]),
        done=median([r.done for r in warm]),
        uploaded=warm[-1].uploaded,
        skipped=warm[-1].skipped,
        outcome="",
    )
    print(row("median", summary))
    encoded_ms = statistics.median(encode_times) * 1000
    print(f"\nPNG encoding of init + 2 masks (main thread, before start): median {encoded_ms:.1f} ms")
    first = summary.first_preview
    verdict = "no preview" if first is None else ("met" if first < TARGET_S else "MISSED")
    print(f"target: first preview < {TARGET_S:.0f} s (median of warm runs): {verdict}")


if __name__ == "__main__":
    main()
