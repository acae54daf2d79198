"""The one entry that runs a job, whatever makes its pixels: prepare it, then hand it to its generator's runner.

The CLI, the server's worker and the storyboard all call `execute`. A runner takes a prepared job and returns its
result, reporting progress and honouring the cancel token between steps; the optimisation loop (engine/optimize.py)
is the runner of the parameterised generators. Every runner scores guides with the job's `GuideLosses`, on whatever
image it has (the optimiser's render; a sampler's predicted clean image), so every guide kind works with every runner.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from .generators import GENERATORS
from .job import PreparedJob, prepare_job
from .progress import CancelToken, Progress, Result
from .refs import ImageSource
from .spec import JobSpec

Runner = Callable[..., Result]  # (job, on_progress=..., cancel=...) -> Result
RUNNERS = {  # runner family -> "module:function"
    "optimise": "engine.optimize:run",
    "sample": "engine.diffusion.sampler:run",
}


def runner_for(job: PreparedJob) -> Runner:
    """The runner of the job's generator family (imported on first use)."""
    module, _, function = RUNNERS[GENERATORS[job.spec.generator.kind].runner].partition(":")
    return getattr(importlib.import_module(module), function)


def execute(
    spec: JobSpec,
    source: ImageSource,
    device: torch.device,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    on_prepared: Callable[[PreparedJob], None] | None = None,
    capture: str | None = None,
) -> Result:
    """Prepare `spec` (every image loaded and checked, every guide built) and run it on `device`.

    `on_prepared(job)` is called once the job is whole and before its first step (the CLI writes its output folder
    then, so a job that cannot start leaves nothing behind). `capture`: how the optimiser's steps run (off, graph,
    compile: engine/step_capture.py; None: the process's default); a machine setting, not the job's. The diffusion
    sampler has no optimiser step and ignores it."""
    job = prepare_job(spec, source, device)
    if on_prepared is not None:
        on_prepared(job)
    runner = runner_for(job)
    if capture is not None and GENERATORS[job.spec.generator.kind].runner == "optimise":
        return runner(job, on_progress=on_progress, cancel=cancel, capture=capture)
    return runner(job, on_progress=on_progress, cancel=cancel)
