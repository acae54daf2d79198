"""Where an engine process's start-up goes: from the process's creation to its job's first step.

What is measured
- A fresh `python` child per run (as every CLI run, storyboard process, Ray actor and first Generate starts), for
  two jobs at 256x256: "style" (an init photo and a style guide) and "clip" (a text guide on the small random CLIP
  model, regia-tiny; the real ViT-B-32 weights are not on this machine).
- Marks, in seconds since the kernel created the process (/proc/self/stat): Python ready (the interpreter and
  site), `import torch`, the engine's modules, the job prepared (images decoded, guides built: the feature net,
  style statistics, the CLIP model), and the first step done; and whether `torch._dynamo` was imported (torch.optim's
  classes import it on their first step, 1.3 s here: engine/stepper.py drives torch's update functions instead).
- Rounds (`--rounds`, default 3) alternate the jobs; the table gives medians. One torch thread (`--threads`).
- `--against PATH`: another checkout of the engine (e.g. a `git worktree` of an older commit) measured in the same
  rounds, alternating with this one, for before/after figures side by side.
- Target (issue 16): process start to first step <= 2 s for the style job on this 2-core CPU.

Run: `.venv/bin/python bench/startup.py [--rounds 3] [--threads 1]`
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
marks.append(("(torch._dynamo imported: 1 = yes)", float("torch._dynamo" in sys.modules)))
print(json.dumps(marks))
"""


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
    }
    paths = {}
    for name, spec in specs.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(spec))
    return paths


def measure(path: Path, threads: int, repo: Path = REPO) -> list[tuple[str, float]]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(threads)], cwd=repo, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"the child failed:\n{proc.stderr}")
    return [tuple(mark) for mark in json.loads(proc.stdout.strip().splitlines()[-1])]


def table(title: str, runs: dict[str, list[list[tuple[str, float]]]]) -> None:
    dynamo = {name: any(run[-1][1] for run in runs[name]) for name in runs}
    runs = {name: [run[:-1] for run in runs[name]] for name in runs}  # the flag is not a stage
    stages = [label for label, _ in runs["style"][0]]
    medians = {name: [statistics.median(run[i][1] for run in runs[name]) for i in range(len(stages))] for name in runs}
    print(f"## {title}")
    print()
    print("| stage | style job: ends at (s) | takes (s) | clip job: ends at (s) | takes (s) |")
    print("|---|---:|---:|---:|---:|")
    for i, label in enumerate(stages):
        cells = []
        for name in ("style", "clip"):
            at = medians[name][i]
            took = at - medians[name][i - 1] if i else at
            cells += [f"{at:.2f}", f"{took:.2f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print(f"torch._dynamo imported: style job {dynamo['style']}, clip job {dynamo['clip']}")
    print(f"style job, process start to first step: {medians['style'][-1]:.2f} s (target <= {TARGET} s)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--against", type=Path, help="another checkout of the engine, measured in the same rounds")
    args = parser.parse_args()
    repos = {"this checkout": REPO} | ({f"{args.against}": args.against.resolve()} if args.against else {})
    runs = {repo: {"style": [], "clip": []} for repo in repos}
    with tempfile.TemporaryDirectory(prefix="regia-startup-") as tmp:
        paths = jobs(Path(tmp))
        for round_ in range(args.rounds):
            order = list(repos) if round_ % 2 == 0 else list(reversed(repos))
            for repo in order:
                for name in ["style", "clip"] if round_ % 2 == 0 else ["clip", "style"]:
                    runs[repo][name].append(measure(paths[name], args.threads, repos[repo]))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# Engine start-up, {args.rounds} rounds, {os.cpu_count()} cores, {args.threads} thread(s), load {load}")
    print()
    for repo in repos:
        table(repo, runs[repo])


if __name__ == "__main__":
    main()
