"""What the step benchmarks share: step timing between progress callbacks, round-robin rounds with medians,
peak memory (RSS growth on the CPU, allocated bytes on CUDA), and the machine line.

A helper, not a benchmark: `make bench` skips files whose names start with `_`. The scripts import it as
`_harness` (Python puts a script's own folder first on sys.path).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from engine.device import describe
from engine.job import PreparedJob
from engine.optimize import run
from engine.progress import Progress
from engine.step_capture import STEADY_FROM

K = TypeVar("K", bound=Hashable)
StepSeconds = tuple[list[float], list[float]]  # (wall, cpu) seconds per step of one run


# ---- timing -------------------------------------------------------------------------------


@dataclass
class Timings:
    """Seconds per step, per round: wall clock, and CPU time of this process (all its threads)."""

    wall: list[list[float]] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)

    def median_ms(self, kind: str) -> float:
        return 1000.0 * statistics.median(t for steps in getattr(self, kind) for t in steps)

    def round_medians(self, kind: str) -> list[float]:
        return [statistics.median(steps) for steps in getattr(self, kind)]


class StepClock:
    """Stamps wall and process CPU time at the end of every step; on CUDA it waits for the device first,
    so the gaps between stamps are the steps' real cost. The gaps leave out what came before the first
    stamp, i.e. the first (warm-up) step and any set-up."""

    def __init__(self, device: torch.device):
        self.device = device
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def stamp(self, *_: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def steps(self) -> StepSeconds:
        return list(np.diff(self.wall)), list(np.diff(self.cpu))


def step_times(job: PreparedJob, capture: str = "off") -> StepSeconds:
    """(wall, cpu) seconds per step of one engine run, stamped by the progress callback that the loop calls
    after every step; the first (warm-up) step is dropped, and with `capture` (engine/step_capture.py) every step
    before the steady state (warm-up, capture, compile)."""
    clock = StepClock(job.device)

    def on_progress(progress: Progress) -> None:
        clock.stamp()  # on CUDA the loop already waits for the losses every step below 20 steps; make it certain

    run(job, on_progress=on_progress, capture=capture)
    wall, cpu = clock.steps()
    skip = STEADY_FROM[capture] - 1
    return wall[skip:], cpu[skip:]


def time_round_robin(runners: dict[K, Callable[[], StepSeconds]], rounds: int) -> dict[K, Timings]:
    """Every runner runs once per round, the order rotated each round, so drifts in the machine's load fall
    on all of them alike."""
    keys = list(runners)
    samples = {key: Timings() for key in keys}
    for round_index in range(rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            wall, cpu = runners[key]()
            samples[key].wall.append(wall)
            samples[key].cpu.append(cpu)
        print(f"  round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    return samples


# ---- peak memory ----------------------------------------------------------------------------


def _proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    raise KeyError(key)


def _reset_peak_rss() -> float | None:
    """Linux: reset this process's RSS high-water mark (VmHWM) and return the RSS now, in MB.

    ru_maxrss cannot serve here: Linux carries the parent's high-water mark into a forked child,
    and the parent holds every prepared job, so the child would start above its own peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_mb("VmRSS")
    except (OSError, KeyError):
        return None


def _maxrss_mb() -> float:
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def peak_growth_mb(device: torch.device, work: Callable[[], object]) -> float:
    """Peak MB that `work()` adds: on CUDA torch.cuda.max_memory_allocated above what was allocated before;
    elsewhere the growth of this process's peak RSS (VmHWM, reset first; ru_maxrss off Linux), which only
    means something in a process of its own that has done nothing bigger before."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        work()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    rss = _reset_peak_rss()
    before = rss if rss is not None else _maxrss_mb()
    work()
    return (_proc_status_mb("VmHWM") if rss is not None else _maxrss_mb()) - before


def run_child(script: str, arguments: list[str]) -> dict:
    """Run `script` in a fresh Python process and return the JSON object on the last line of its output."""
    out = subprocess.run([sys.executable, script, *arguments], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---- the machine --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(device: torch.device) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {describe(device)}, python {platform.python_version()}, "
        f"load average {load}"
    )


def load_warning(device: torch.device) -> str | None:
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if device.type != "cpu" or load < cpus:
        return None
    return (
        f"warning: load average {load:.1f} on {cpus} CPUs: other processes compete for the cores; "
        "wall times are inflated, and with several torch threads erratic (try --threads 1)"
    )


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
