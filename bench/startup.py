"""Where an engine process's start-up goes: from the process's creation to its job's first step.

What is measured
- A fresh `python` child per run (as every CLI run, storyboard process, Ray actor and first Generate starts), for
  three jobs at 256x256: "style" (an init photo and a style guide), "clip" (a text guide on the small random CLIP
  model, regia-tiny) and "ViT-B-32 file" (a text guide on ViT-B-32 loaded from a checkpoint file, as an artist's
  real weights are: the bench writes fixed-seed random weights to a .safetensors once, since no model hub is
  reachable here; loading does not depend on the values).
- Marks, in seconds since the kernel created the process (/proc/self/stat): Python ready (the interpreter and
  site), `import torch`, the engine's modules, the job prepared (images decoded, guides built: the feature net,
  style statistics, the CLIP model), and the first step done; the process's CPU time (user + system) at the first
  step, which other processes on a shared machine disturb less than the wall clock; and whether `torch._dynamo`
  was imported.
- As on a machine where the engine has run before: one unrecorded run of each job per checkout first, with Python
  allowed to write its bytecode cache (PYTHONDONTWRITEBYTECODE is cleared for the children), so no run compiles
  the engine's sources, and the files are in the OS page cache.
- Rounds (`--rounds`, default 3) alternate the jobs; the table gives medians. One torch thread (`--threads`).
- `--against PATH [PATH ...]`: other checkouts of the engine (e.g. `git worktree`s of older commits) measured in
  the same rounds, alternating with this one, for before/after figures side by side.
- Target (issue 16): process start to first step <= 2 s for the style job on this 2-core CPU. `import torch` is
  most of it and is not the engine's to cut, so the table also gives what comes after it.

Run: `.venv/bin/python bench/startup.py [--rounds 3] [--threads 1] [--against PATH ...]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import jobkit  # test images on disk

REPO = jobkit.REPO
TARGET = 2.0

CHILD = r"""
import json, os, sys, time

def since_start():
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")

marks = [("Python ready", since_start())]
import torch
torch.set_num_threads(int(sys.argv[2]))
marks.append(("import torch", since_start()))
from engine.job import prepare_job
from engine.optimize import run
from engine.refs import FolderSource
from engine.spec import validate_spec
marks.append(("import the engine", since_start()))
path = sys.argv[1]
spec = validate_spec(json.load(open(path)))
from pathlib import Path
job = prepare_job(spec, FolderSource(Path(path).parent), torch.device("cpu"))
marks.append(("job prepared (images, guides, models)", since_start()))
first = []
run(job, on_progress=lambda p: first.append(since_start()) if not first else None)
marks.append(("first step done", first[0]))
times = os.times()
marks.append(("(CPU time at the first step)", times.user + times.system))
marks.append(("(torch._dynamo imported: 1 = yes)", float("torch._dynamo" in sys.modules)))
print(json.dumps(marks))
"""


VIT_B32 = "ViT-B-32"
JOBS = ("style", "clip", "ViT-B-32 file")


def vit_b32_checkpoint(path: Path) -> None:
    """ViT-B-32 with fixed-seed random weights, saved as a checkpoint file (about 600 MB)."""
    import torch
    from safetensors.torch import save_file

    from engine.models import load_clip

    model = load_clip(VIT_B32, "random", torch.device("cpu")).model
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))


def jobs(folder: Path) -> dict[str, Path]:
    jobkit.save(folder / "init.png", jobkit.astronaut(256))
    jobkit.save(folder / "brick.png", jobkit.brick_texture(256))
    base = {"version": 1, "width": 256, "height": 256, "steps": 2, "preview_every": 0, "init": {"image": "init.png"}}
    specs = {
        "style": {**base, "guides": [{"kind": "style", "image": "brick.png"}]},
        "clip": {
            **base,
            "guides": [{"kind": "text", "prompt": "a lighthouse at dusk"}],
            "models": {"clip": {"name": "regia-tiny", "weights": "random"}},
        },
        "ViT-B-32 file": {
            **base,
            "guides": [{"kind": "text", "prompt": "a lighthouse at dusk"}],
            "models": {"clip": {"name": VIT_B32, "weights": str(folder / "vit-b-32.safetensors")}},
            "cutouts": {"count": 8},
        },
    }
    vit_b32_checkpoint(folder / "vit-b-32.safetensors")
    paths = {}
    for name, spec in specs.items():
        paths[name] = folder / f"{name.replace(' ', '-')}.json"
        paths[name].write_text(json.dumps(spec))
    return paths


def measure(path: Path, threads: int, repo: Path = REPO) -> list[tuple[str, float]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(repo)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed engine has its bytecode cache
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(threads)], cwd=repo, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"the child failed:\n{proc.stderr}")
    return [tuple(mark) for mark in json.loads(proc.stdout.strip().splitlines()[-1])]


Runs = dict[str, list[list[tuple[str, float]]]]  # job -> rounds -> marks


def medians(runs: Runs) -> dict[str, dict[str, float]]:
    """Per job, the median of each mark over the rounds."""
    return {
        job: {label: statistics.median(dict(run)[label] for run in rounds) for label, _ in rounds[0]}
        for job, rounds in runs.items()
    }


def table(title: str, runs: Runs) -> None:
    middle = medians(runs)
    stages = [label for label, _ in runs[JOBS[0]][0] if not label.startswith("(")]
    print(f"## {title}")
    print()
    print("| stage | " + " | ".join(f"{job}: ends at (s) | takes (s)" for job in JOBS) + " |")
    print("|---|" + "---:|---:|" * len(JOBS))
    for i, label in enumerate(stages):
        cells = []
        for job in JOBS:
            at = middle[job][label]
            took = at - middle[job][stages[i - 1]] if i else at
            cells += [f"{at:.2f}", f"{took:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| after `import torch` | " + " | ".join(f"| {after_torch(middle[job]):.2f}" for job in JOBS) + " |")
    print("| CPU time at the first step | " + " | ".join(f"{cpu_time(middle[job]):.2f} |" for job in JOBS) + " |")
    print()
    dynamo = ", ".join(f"{job} {any(dict(run)[DYNAMO] for run in runs[job]) > 0}" for job in JOBS)
    print(f"torch._dynamo imported: {dynamo}")
    print(f"style job, process start to first step: {middle['style'][FIRST]:.2f} s (target <= {TARGET} s)")
    print()


FIRST, TORCH = "first step done", "import torch"
DYNAMO, CPU = "(torch._dynamo imported: 1 = yes)", "(CPU time at the first step)"


def after_torch(marks: dict[str, float]) -> float:
    return marks[FIRST] - marks[TORCH]


def cpu_time(marks: dict[str, float]) -> float:
    return marks[CPU]


def comparison(runs: dict[str, Runs]) -> None:
    """Each checkout's process start to first step, and its part after `import torch`, side by side."""
    names = list(runs)
    middle = {name: medians(runs[name]) for name in names}
    print("## Side by side: process start to first step (after `import torch`), medians")
    print()
    print("| job | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for job in JOBS:
        cells = [f"{middle[n][job][FIRST]:.2f} ({after_torch(middle[n][job]):.2f})" for n in names]
        print(f"| {job} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--against", type=Path, nargs="+", default=[], help="other checkouts of the engine, measured in the same rounds"
    )
    args = parser.parse_args()
    repos = {"this checkout": REPO} | {str(path): path.resolve() for path in args.against}
    runs: dict[str, Runs] = {repo: {job: [] for job in JOBS} for repo in repos}
    with tempfile.TemporaryDirectory(prefix="regia-startup-") as tmp:
        paths = jobs(Path(tmp))
        for repo in repos:  # the warm-up: bytecode caches written, files read once
            for job in JOBS:
                measure(paths[job], args.threads, repos[repo])
        for round_ in range(args.rounds):
            order = list(repos) if round_ % 2 == 0 else list(reversed(repos))
            for repo in order:
                for job in JOBS if round_ % 2 == 0 else reversed(JOBS):
                    runs[repo][job].append(measure(paths[job], args.threads, repos[repo]))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# Engine start-up, {args.rounds} rounds, {os.cpu_count()} cores, {args.threads} thread(s), load {load}")
    print()
    for repo in repos:
        table(repo, runs[repo])
    if len(repos) > 1:
        comparison(runs)


if __name__ == "__main__":
    main()
