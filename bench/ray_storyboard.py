"""A storyboard on Ray actors against the same storyboard in one process, with the same threads per process.

What is measured
- The storyboard of bench/storyboard.py: 12 shots at 256x256 (default), 30 steps each, a shared brick style and
  palette, each shot from its own photo with a content guide. Previews off.
- "one process": `python -m engine storyboard board.json --out DIR --quiet --threads T`, wall time of the process
  (start-up, imports, the feature net and style statistics once, every shot, the contact sheet).
- "Ray": `python -m engine storyboard board.json --out DIR --quiet --threads T --ray --actors N`: a local Ray
  started by the process, N actors of T threads each. Wall time of the process, and where it goes, from the
  process's own log: Ray's start, the actors' start (each imports torch), the shots (the first shot on each actor
  also builds its feature net), writing the outputs.
- Both sides render the same shots, so their PNGs must be byte-identical: the script checks it.
- Rounds (`--rounds`, default 1) alternate which side goes first; the table gives medians over rounds.
- Target (issue 15): Ray with 2 actors at most 0.6x one process on 2 cores, same threads per process.

Run: `.venv/bin/python bench/ray_storyboard.py [--shots 12] [--size 256] [--steps 30] [--actors 2] [--threads 1]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from storyboard import REPO, build_storyboard, machine_line  # the same storyboard as bench/storyboard.py

TARGET_RATIO = 0.6


def run(path: Path, out: Path, threads: int, ray_actors: int = 0) -> tuple[float, dict[str, float]]:
    """Wall time of one storyboard process, and for Ray the times its log lines mark."""
    args = [sys.executable, "-m", "engine", "storyboard", str(path), "--out", str(out), "--device", "cpu"]
    args += ["--threads", str(threads)]
    if ray_actors:
        args += ["--ray", "--actors", str(ray_actors)]
    else:
        args += ["--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    marks: dict[str, float] = {}
    for line in proc.stdout:  # "N Ray actors ready", then one line per shot
        now = time.perf_counter() - start
        if "actors ready" in line:
            marks["actors ready"] = now
        elif line.startswith("shot "):
            marks.setdefault("first shot", now)
            marks["last shot"] = now
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode})")
    return time.perf_counter() - start, marks


def same_bytes(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in (a / "shots").iterdir())
    return names == sorted(p.name for p in (b / "shots").iterdir()) and all(
        (a / "shots" / n).read_bytes() == (b / "shots" / n).read_bytes() for n in names
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    single, on_ray, marks = [], [], []
    with tempfile.TemporaryDirectory(prefix="regia-ray-bench-") as tmp:
        path, _ = build_storyboard(Path(tmp), args.shots, args.size, args.steps)
        for round_ in range(args.rounds):
            order = ["single", "ray"] if round_ % 2 == 0 else ["ray", "single"]
            for side in order:
                out = Path(tmp) / f"{side}-{round_}"
                if side == "single":
                    single.append(run(path, out, args.threads)[0])
                else:
                    seconds, mark = run(path, out, args.threads, args.actors)
                    on_ray.append(seconds)
                    marks.append(mark)
            identical = same_bytes(Path(tmp) / f"single-{round_}", Path(tmp) / f"ray-{round_}")
    one, ray_ = statistics.median(single), statistics.median(on_ray)
    mark = {k: statistics.median(m[k] for m in marks) for k in marks[0]}
    print(f"# Storyboard on Ray: {args.shots} shots at {args.size}x{args.size}, {args.steps} steps")
    print(f"# {machine_line(args.threads)}; {args.actors} actors of {args.threads} thread(s); {args.rounds} round(s)")
    print()
    print("| run | wall (s) | ratio to one process |")
    print("|---|---|---|")
    print(f"| one process, {args.threads} thread(s) | {one:.1f} | 1.00 |")
    print(f"| Ray, {args.actors} actors | {ray_:.1f} | {ray_ / one:.2f} (target <= {TARGET_RATIO}) |")
    print()
    print("| Ray, where the time goes | seconds |")
    print("|---|---|")
    print(f"| start: Ray and the actors (imports) | {mark['actors ready']:.1f} |")
    print(f"| until the first shot is back (its feature net built) | {mark['first shot'] - mark['actors ready']:.1f} |")
    print(f"| the other shots | {mark['last shot'] - mark['first shot']:.1f} |")
    print(f"| outputs and shutdown | {ray_ - mark['last shot']:.1f} |")
    print()
    print(f"shot PNGs byte-identical: {identical}")
    print(json.dumps({"one_process": one, "ray": ray_, "ratio": ray_ / one, "identical": identical}))


if __name__ == "__main__":
    main()
