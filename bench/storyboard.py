"""A storyboard rendered in one process against the same shots as separate `python -m engine run` processes.

What is measured
- One storyboard of 12 shots at 256x256 (default), 30 steps each, one shared style (a brick texture and a
  three-colour palette), seed rule per_shot. Each shot starts from its own photo (scikit-image: six photos, each
  also mirrored) and keeps its layout through a content guide. Previews are off on both sides, so neither writes
  them.
- "storyboard": `python -m engine storyboard board.json --out DIR --quiet`, one process for all shots (imports,
  feature net and the brick's style statistics once). Per shot, its `seconds` from storyboard.json (prepare and
  run); the total is the process's wall time, start-up and writing the contact sheet included.
- "separate": for each shot, its job spec (engine.storyboard.shot_spec, the exact job the storyboard runs) is
  written next to the storyboard file and run with `python -m engine run SHOT.json --out DIR --quiet`, one process
  after another. Per shot and in total, the processes' wall time.
- Both sides run the same jobs, so the shot PNGs must be identical: the script checks it.
- Rounds (`--rounds`, default 1) alternate which side goes first; the table gives medians over rounds.
- Threads: OMP/MKL threads of the engine processes (`--threads`, default 1: on a shared 2-core machine, more
  threads wait on each other and the figures swing).
- Target: the storyboard takes at most 0.9x the separate runs' total.

Run: `.venv/bin/python bench/storyboard.py [--shots 12] [--size 256] [--steps 30] [--rounds 1] [--threads 1]`
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import jobkit  # test images on disk

from engine.storyboard import Storyboard, shot_spec, validate_storyboard

REPO = jobkit.REPO
TARGET_RATIO = 0.9
PHOTOS = {
    "astronaut": lambda: data.astronaut(),
    "coffee": lambda: data.coffee()[:, 80:480],
    "chelsea": lambda: data.chelsea()[:, 60:360],
    "rocket": lambda: data.rocket()[:, 100:527],
    "camera": lambda: np.stack([data.camera()] * 3, axis=-1),
    "tissue": lambda: data.immunohistochemistry(),
}


def build_storyboard(folder: Path, shots: int, size: int, steps: int) -> tuple[Path, Storyboard]:
    """The storyboard file and its images in `folder`; shot i starts from photo i (mirrored every other lap)."""
    jobkit.save(folder / "styles" / "brick.png", jobkit.brick_texture(256))
    entries = []
    names = list(PHOTOS)
    for index in range(shots):
        photo = names[index % len(names)]
        pixels = jobkit.resized(PHOTOS[photo](), size)
        if (index // len(names)) % 2:
            pixels = pixels[:, ::-1]
        image = f"photos/{index:02d}_{photo}.png"
        jobkit.save(folder / image, pixels)
        entries.append(
            {
                "name": f"{photo} {index + 1}",
                "frame_start": 1 + 24 * index,
                "frame_end": 24 + 24 * index,
                "description": f"the {photo}",
                "init": {"image": image},
                "guides": [{"kind": "content", "image": image, "weight": 0.5}],
            }
        )
    data_: dict[str, Any] = {
        "version": 1,
        "name": "bench",
        "width": size,
        "height": size,
        "steps": steps,
        "preview_every": 0,
        "seed_rule": "per_shot",
        "style": {"images": ["styles/brick.png"], "palette": ["#3b1f14", "#b5562f", "#e8c4a0"]},
        "shots": entries,
    }
    path = folder / "board.json"
    path.write_text(json.dumps(data_, indent=2))
    return path, validate_storyboard(data_)


def engine(args: list[str], threads: int) -> float:
    """Run `python -m engine ARGS` to the end; its wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"python -m engine {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds


def run_storyboard(path: Path, out: Path, threads: int) -> tuple[float, list[float], list[Path]]:
    total = engine(["storyboard", str(path), "--out", str(out), "--quiet", "--device", "cpu"], threads)
    report = json.loads((out / "storyboard.json").read_text())
    return total, [shot["seconds"] for shot in report["shots"]], [out / shot["file"] for shot in report["shots"]]


def run_separately(path: Path, board: Storyboard, out: Path, threads: int) -> tuple[list[float], list[Path]]:
    seconds, results = [], []
    for index in range(len(board.shots)):
        spec_path = path.parent / f"shot_{index + 1:03d}.json"
        spec_path.write_text(shot_spec(board, index).to_json())
        folder = out / f"{index + 1:03d}"
        seconds.append(engine(["run", str(spec_path), "--out", str(folder), "--quiet", "--device", "cpu"], threads))
        results.append(folder / "result.png")
    return seconds, results


def same_pixels(a: list[Path], b: list[Path]) -> bool:
    return all(np.array_equal(jobkit.read_rgb(x), jobkit.read_rgb(y)) for x, y in zip(a, b, strict=True))


def machine_line(threads: int) -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, engine threads {threads}, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    print(machine_line(args.threads))
    with tempfile.TemporaryDirectory(prefix="regia-storyboard-bench-") as tmp:
        root = Path(tmp)
        path, board = build_storyboard(root / "board", args.shots, args.size, args.steps)
        totals_board, totals_apart, per_board, per_apart = [], [], [], []
        identical = True
        for round_ in range(args.rounds):
            sides = ["storyboard", "separate"] if round_ % 2 == 0 else ["separate", "storyboard"]
            for side in sides:
                out = root / f"{side}_{round_}"
                if side == "storyboard":
                    total, shots, board_files = run_storyboard(path, out, args.threads)
                    totals_board.append(total)
                    per_board.append(shots)
                else:
                    shots, apart_files = run_separately(path, board, out, args.threads)
                    totals_apart.append(sum(shots))
                    per_apart.append(shots)
            identical &= same_pixels(board_files, apart_files)

    names = [shot.name for shot in board.shots]
    print(
        f"\n{len(names)} shots at {args.size}x{args.size}, {args.steps} steps, CPU; medians over {args.rounds} round(s)"
    )
    print("\n| shot | storyboard s (in process) | separate s (process) |")
    print("|---|---:|---:|")
    for index, name in enumerate(names):
        in_board = statistics.median(r[index] for r in per_board)
        alone = statistics.median(r[index] for r in per_apart)
        print(f"| {index + 1:03d} {name} | {in_board:.2f} | {alone:.2f} |")
    board_total, apart_total = statistics.median(totals_board), statistics.median(totals_apart)
    ratio = board_total / apart_total
    print(f"| **total (wall)** | **{board_total:.1f}** | **{apart_total:.1f}** |")
    print(f"| per shot | {board_total / len(names):.2f} | {apart_total / len(names):.2f} |")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"\nratio storyboard / separate: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(f"shot PNGs identical both ways: {identical}")


if __name__ == "__main__":
    main()
