"""The optimisation loop: render, composite, guide losses, normalise, step.

Progress, previews and cancellation are handled between steps. Loss values stay on the
device and are copied to the host only when reported, so a GPU step does not wait on the host.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import JobCancelled
from .features import JITTER_UNIT
from .images import quantize
from .job import PreparedJob
from .spec import Optimizer


class CancelToken:
    """Set from any thread; the loop checks it before every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    step: int  # steps completed
    steps: int
    elapsed: float
    losses: dict[str, float]  # latest reported, normalised and weighted, per term key
    total: float
    preview: np.ndarray | None = None  # uint8 H x W x 3, on preview steps only

    @property
    def fraction(self) -> float:
        return self.step / self.steps

    @property
    def eta(self) -> float | None:
        return None if self.step == 0 else self.elapsed / self.step * (self.steps - self.step)


@dataclass
class Result:
    image: np.ndarray  # uint8 H x W x 3
    history: list[dict[str, float]] = field(default_factory=list)  # per step: total and terms
    elapsed: float = 0.0


def build_optimizer(
    config: Optimizer, params, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    params = list(params)
    if config.kind == "adam":
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    elif config.kind == "adamw":
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    warmup = round(config.warmup * steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        if config.schedule == "cosine":  # down to 10% of lr, so late steps still refine
            return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))
        if config.schedule == "linear":
            return 1.0 - 0.9 * progress
        return 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
) -> Result:
    spec = job.spec
    steps = spec.steps
    rng = torch.Generator().manual_seed(spec.seed)
    optimizer, schedule = build_optimizer(spec.optimizer, job.generator.parameters(), steps)
    terms = job.terms
    keys = [term.key for term in terms]
    weights = torch.tensor([term.weight for term in terms], device=job.device)
    floors = torch.tensor([term.min_scale for term in terms], device=job.device)
    from_start = torch.tensor([term.scale_from == "start" for term in terms], device=job.device)
    reference = job.reference_losses() if terms else None
    scales: torch.Tensor | None = None

    pending: list[torch.Tensor] = []  # per step: [total, term...] on the device
    history: list[dict[str, float]] = []
    latest: dict[str, float] = {}
    start = time.perf_counter()
    report_every = spec.preview_every or max(1, steps // 20)

    for step in range(steps):
        if cancel is not None and cancel.cancelled:
            raise JobCancelled(f"cancelled after {step} of {steps} steps")
        optimizer.zero_grad(set_to_none=True)
        image = job.render()
        if terms:
            ctx = job.context(image, jitter(rng))
            raw = torch.stack([term.raw(ctx) for term in terms])
            if scales is None:
                # Normalise so that weight 1 means the same pull for every guide.
                scales = torch.maximum(torch.where(from_start, raw.detach(), reference).abs(), floors)
            values = weights * raw / scales
            total = values.sum()
            total.backward()
            optimizer.step()
            pending.append(torch.cat([total.detach()[None], values.detach()]))
            schedule.step()

        done = step + 1
        # A preview after the first step too: the artist sees the job has started within a step, not after
        # preview_every of them.
        preview_now = spec.preview_every > 0 and (done == 1 or done % spec.preview_every == 0) and done < steps
        if pending and (done == 1 or done % report_every == 0 or done == steps or preview_now):
            rows = torch.stack(pending).cpu().tolist()
            pending.clear()
            for row in rows:
                history.append({"total": row[0], **dict(zip(keys, row[1:], strict=True))})
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
