"""Jobs whose results must not change when the engine's code is reorganised: the demo job and one job per guide
kind, mode and generator that specs used before per-region losses existed.

`python tests/golden_jobs.py OUT_DIR` runs them all (CPU, one thread) through `engine.cli.run_spec_file`, which every
version of the engine has, and writes OUT_DIR/<name>.png and OUT_DIR/fingerprint.json. tests/data/golden/<CPU>/
holds what the engine gave before its guides moved into a table (commit 2d7b013), a set per CPU kernel family;
tests/test_golden.py runs the same jobs now and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import jobkit  # noqa: E402

SIZE, STEPS = 40, 12
TINY_CLIP = {"clip": {"name": "regia-tiny", "weights": "random"}}


def _images(folder: Path) -> None:
    jobkit.save(folder / "init.png", jobkit.astronaut(SIZE))
    jobkit.save(folder / "brick.png", jobkit.brick_texture(48))
    jobkit.save(folder / "grass.png", jobkit.grass_texture(48))
    jobkit.save(folder / "coffee.png", jobkit.coffee(SIZE))
    jobkit.save(folder / "left.png", jobkit.rect_mask(SIZE, 0, 0, SIZE, SIZE // 2))
    jobkit.save(folder / "right.png", jobkit.rect_mask(SIZE, 0, SIZE // 2, SIZE, SIZE))
    strokes = jobkit.np.zeros((SIZE, SIZE, 4), jobkit.np.uint8)
    strokes[8:14, 4:36] = (200, 40, 40, 255)
    jobkit.save(folder / "scribble.png", strokes)
    lines = jobkit.np.full((SIZE, SIZE, 3), 255, jobkit.np.uint8)
    lines[20, 2:38] = 0
    jobkit.save(folder / "outline.png", lines)


def _two_regions(left: list[dict[str, Any]], right: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    regions = [
        {"name": "left", "mask": "left.png", "feather": 2, "guides": left},
        {"name": "right", "mask": "right.png", "guides": right},
    ]
    return jobkit.spec(SIZE, STEPS, init={"image": "init.png"}, regions=regions, **fields)


def jobs() -> dict[str, dict[str, Any]]:
    style = {"kind": "style", "image": "brick.png"}
    grass = {"kind": "style", "image": "grass.png", "weight": 0.7}
    return {
        "styles": _two_regions([style], [grass]),
        "fourier_losses": _two_regions(
            [style], [{"kind": "palette", "colors": ["#203040", "#e0c080"]}],
            generator={"kind": "fourier"}, losses={"tv": 0.3, "saturation": -0.2, "symmetry": 0.4},
        ),
        "strokes_content": _two_regions(
            [{"kind": "scribble", "image": "scribble.png"}, {"kind": "content", "image": "coffee.png", "weight": 0.5}],
            [{"kind": "outline", "image": "outline.png"}],
        ),
        "keep_embolden": jobkit.spec(
            SIZE, STEPS, init={"image": "init.png"}, guides=[grass],
            regions=[{"name": "face", "mask": "left.png", "mode": "keep"},
                     {"name": "suit", "mask": "right.png", "mode": "embolden", "strength": 1.5}],
        ),
        "preset_no_regions": jobkit.spec(
            SIZE, STEPS, preset="watercolour", guides=[style], optimizer={"kind": "adamw"}
        ),
        "clip_text": _two_regions(
            [{"kind": "text", "prompt": "a brick wall"}], [{"kind": "text", "prompt": "people", "weight": -0.5}],
            models=TINY_CLIP, cutouts={"count": 8},
        ),
    }  # fmt: skip


def run_all(out: Path) -> dict[str, Path]:
    from engine.cli import run_spec_file
    from engine.demo import build_demo_job

    out.mkdir(parents=True, exist_ok=True)
    folder = out / "jobs"
    _images(folder)
    results = {}
    for name, spec in jobs().items():
        run_spec_file(jobkit.write_spec(folder, spec, f"{name}.json"), out / "runs" / name, "cpu", quiet=True)
        results[name] = out / "runs" / name / "result.png"
    demo = build_demo_job(out / "demo", size=48, steps=STEPS)
    run_spec_file(demo, out / "runs" / "demo", "cpu", quiet=True)
    results["demo"] = out / "runs" / "demo" / "result.png"
    return results


def fingerprint() -> dict[str, str]:
    """What the bytes depend on besides the code: torch's version and the CPU kernels it picked."""
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(), "threads": "1"}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for name, path in run_all(target / "work").items():
        (target / f"{name}.png").write_bytes(path.read_bytes())
    (target / "fingerprint.json").write_text(json.dumps(fingerprint(), indent=1) + "\n")
    print(f"wrote {target}")
