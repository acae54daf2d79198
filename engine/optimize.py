"""The optimisation runner: render, composite, guide losses, normalise, step; for the parameterised generators
(pixels, fourier). engine/execute.py picks it by the generator's family.

Progress, previews and cancellation are handled between steps. Loss values stay on the device and are copied to the
host only when reported, so a GPU step does not wait on the host. How a step runs (eagerly, or captured once and
replayed: `capture`) is engine/step_capture.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .errors import JobCancelled
from .features import JITTER_UNIT
from .images import quantize
from .job import PreparedJob
from .losses import GuideLosses
from .progress import CancelToken, Progress, Result
from .step_capture import build_step
from .stepper import Stepper

JITTER_STEPS = 2  # shifts of 0, 1 or 2 JITTER_UNITs either way


def jitter(rng: torch.Generator) -> tuple[int, int]:
    dy, dx = (torch.randint(-JITTER_STEPS, JITTER_STEPS + 1, (2,), generator=rng) * JITTER_UNIT).tolist()
    return int(dy), int(dx)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return quantize(image.detach()[0].permute(1, 2, 0).float().cpu().numpy())


def run(
    job: PreparedJob,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    capture: str | None = None,
) -> Result:
    """`capture`: off, graph or compile (engine/step_capture.py); None: the process's default (off unless set)."""
    spec = job.spec
    steps = spec.steps
    rng = torch.Generator().manual_seed(spec.seed)
    optimizer = Stepper(spec.optimizer, job.generator.parameters(), steps)
    guide_losses = GuideLosses(job)
    one_step = build_step(job, guide_losses, optimizer, lambda: jitter(rng), capture) if guide_losses else None

    pending: list[torch.Tensor] = []  # per step: [total, term...] on the device
    history: list[dict[str, float]] = []
    latest: dict[str, float] = {}
    start = time.perf_counter()
    report_every = spec.preview_every or max(1, steps // 20)

    for step in range(steps):
        if cancel is not None and cancel.cancelled:
            raise JobCancelled(f"cancelled after {step} of {steps} steps")
        if one_step is not None:
            pending.append(one_step())

        done = step + 1
        # A preview after the first step too: the artist sees the job has started within a step, not after
        # preview_every of them.
        preview_now = spec.preview_every > 0 and (done == 1 or done % spec.preview_every == 0) and done < steps
        if pending and (done == 1 or done % report_every == 0 or done == steps or preview_now):
            rows = torch.stack(pending).cpu().tolist()
            pending.clear()
            for row in rows:
                history.append({"total": row[0], **dict(zip(guide_losses.keys, row[1:], strict=True))})
            latest = history[-1]
        if on_progress is not None:
            preview = None
            if preview_now:
                with torch.no_grad():
                    preview = to_uint8(job.render())
            losses = {k: v for k, v in latest.items() if k != "total"}
            on_progress(Progress(done, steps, time.perf_counter() - start, losses, latest.get("total", 0.0), preview))

    with torch.no_grad():
        final = to_uint8(job.render())
    return Result(image=final, history=history, elapsed=time.perf_counter() - start)
